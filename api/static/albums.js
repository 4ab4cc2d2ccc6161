// blip2-search web page, smart albums: save the current search as an album, list the albums
// with their counts and what is new, open one (its new images marked), export it, delete it,
// and pin or exclude the image shown in the detail view. Loaded after app.js, whose helpers
// (api, say, show, state, $) it uses.

const albums = { open: null, names: [] };

function albumPath(name, rest = "") {
  return `/api/albums/${encodeURIComponent(name)}${rest}`;
}

async function sendJSON(path, method, body) {
  return api(path, { method, headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
}

// The search box's query, with the page's order, cutoff and condition, saved under a name.
async function saveAlbum() {
  const query = $("query").value.trim();
  if (!query) return say("Type a search first: an album is a saved search.", true);
  const name = window.prompt(`Save “${query}” as an album named:`);
  if (!name) return;
  const where = $("where").value.trim();
  const body = { name: name.trim(), query, sort: $("sort").value, where: where ? [where] : [] };
  // the cutoff the page shows (a date order's); else the album's default: 50 %, or none for filters alone
  if (!$("min-match").disabled) body.min_match = $("min-match").value / 100;
  say(`Saving the album “${body.name}”…` + loading(["retrieval"]));
  try {
    const album = await sendJSON("/api/albums", "POST", body);
    say(`Album “${album.name}” saved: ${album.count} items. New images join it as they are indexed.`);
    await albumNames();
  } catch (error) {
    say(`Could not save the album: ${error.message}`, true);
  }
}

function albumRow(album) {
  const row = document.createElement("button");
  row.type = "button";
  row.className = "album";
  row.dataset.name = album.name;
  const title = document.createElement("strong");
  title.textContent = album.name;
  const count = document.createElement("span");
  count.className = "count";
  count.textContent = `${album.count} item${album.count === 1 ? "" : "s"}`;
  const query = document.createElement("span");
  query.className = "muted";
  const cutoff = album.min_match == null ? "filters only" : `match ≥ ${Math.round(album.min_match * 100)}%`;
  query.textContent = `“${album.query}” · ${cutoff}`;
  row.append(title, count);
  if (album.new) {
    const fresh = document.createElement("span");
    fresh.className = "new-badge";
    fresh.textContent = `${album.new} new`;
    row.append(fresh);
  }
  row.append(query);
  row.addEventListener("click", () => openAlbum(album.name));
  return row;
}

async function listAlbums() {
  const ticket = ++state.latest;
  say("Loading albums…");
  try {
    const body = await api("/api/albums");
    if (ticket !== state.latest) return;
    albums.names = body.albums.map((album) => album.name);
    fillAlbumChoice();
    $("results").hidden = true;
    $("groups").hidden = true;
    $("pager").hidden = true;
    $("album-bar").hidden = true;
    $("album-list").hidden = false;
    $("album-list").replaceChildren(...body.albums.map(albumRow));
    say(body.albums.length ? `${body.albums.length} albums` :
      "No albums yet: search, then “Save as album” keeps that search current as images arrive.");
  } catch (error) {
    if (ticket === state.latest) say(`Could not list the albums: ${error.message}`, true);
  }
}

async function openAlbum(name) {
  const ticket = ++state.latest;
  say(`Opening “${name}”…`);
  try {
    const album = await api(albumPath(name, `?${new URLSearchParams({ limit: 200 })}`));
    if (ticket !== state.latest) return;
    albums.open = album.name;
    state.query = album.min_match == null ? "" : album.query;
    $("album-list").hidden = true;
    show($("results"), album.results);
    const fresh = new Set(album.new_ids);
    for (const card of $("results").children) {
      if (!fresh.has(Number(card.dataset.id))) continue;
      card.classList.add("new");
      const badge = document.createElement("span");
      badge.className = "new-badge";
      badge.textContent = "new";
      card.querySelector(".meta").prepend(badge);
    }
    $("album-title").textContent = `${album.name}: ${album.count} items` +
      (album.new ? `, ${album.new} new since your last visit` : "");
    $("album-export").href = albumPath(album.name, "/export");
    $("album-bar").hidden = false;
    const shown = album.results.length < album.count ? ` (the first ${album.results.length})` : "";
    say(`“${album.query}”, ${album.sort === "relevance" ? "best match first" : `${album.sort} first`}${shown}`);
  } catch (error) {
    if (ticket === state.latest) say(`Could not open the album: ${error.message}`, true);
  }
}

async function deleteAlbum() {
  if (!albums.open || !window.confirm(`Delete the album “${albums.open}”? Its images stay indexed.`)) return;
  try {
    await api(albumPath(albums.open), { method: "DELETE" });
    albums.open = null;
    await listAlbums();
  } catch (error) {
    say(`Could not delete the album: ${error.message}`, true);
  }
}

function fillAlbumChoice() {
  const choice = $("album-choice");
  choice.replaceChildren(...albums.names.map((name) => new Option(name, name)));
  $("album-place").hidden = albums.names.length === 0;
}

// In the detail view: keep the image in an album whatever its query says, or keep it out.
async function placeInAlbum(action) {
  const name = $("album-choice").value;
  if (!name || !state.current) return;
  try {
    const album = await sendJSON(albumPath(name), "PATCH", { [action]: [state.current.id] });
    $("album-placed").textContent = `${action === "pin" ? "Pinned to" : "Excluded from"} “${album.name}” ` +
      `(${album.count} items)`;
    if (albums.open === name && !$("results").hidden) openAlbum(name);
  } catch (error) {
    $("album-placed").textContent = `Could not change the album: ${error.message}`;
  }
}

$("save-album").addEventListener("click", saveAlbum);
$("albums").addEventListener("click", listAlbums);
$("album-delete").addEventListener("click", deleteAlbum);
$("album-pin").addEventListener("click", () => placeInAlbum("pin"));
$("album-exclude").addEventListener("click", () => placeInAlbum("exclude"));
$("detail").addEventListener("close", () => { $("album-placed").textContent = ""; });
// the albums the detail view offers (none: no album row there)
async function albumNames() {
  try {
    albums.names = (await api("/api/albums")).albums.map((album) => album.name);
    fillAlbumChoice();
  } catch (error) { /* the page's own requests say what is wrong */ }
}

albumNames();
