// blip2-search web page: plain JS, no build step. Talks to the JSON API only.
const $ = (id) => document.getElementById(id);
const state = { current: null, history: [], latest: 0, browseOffset: 0, query: "", parts: null };
const PART_NAMES = { encoder: "image encoder", retrieval: "match head", language_model: "language model" };
const PAGE = 24;

function say(text, isError = false) {
  $("message").textContent = text;
  $("message").classList.toggle("error", isError);
}

// " (loading the language model first…)" when a request needs model parts the server has not
// built yet (/api/stats lists those it has): at full size the first such request waits for them.
function loading(parts) {
  if (!state.parts) return "";
  const missing = parts.filter((part) => !state.parts.includes(part));
  state.parts.push(...missing);  // built by the time the request returns
  return missing.length ? ` (loading the ${missing.map((p) => PART_NAMES[p]).join(" and ")} first: ` +
    "this takes longer once)" : "";
}

// A server that protects reads (BLIP2_SEARCH_PROTECT_READS) answers 401 until it has its key:
// the page asks for it once and keeps it in a cookie for this tab's site, which the pictures'
// requests carry too (an <img> sends no header).
async function api(path, options = {}, asked = false) {
  const response = await fetch(path, options);
  if (response.status === 401 && !asked && !options.method) {
    const key = window.prompt("This index needs its API key to be searched:");
    if (key) {
      document.cookie = `blip2_search_key=${encodeURIComponent(key)}; path=/; SameSite=Strict`;
      return api(path, options, true);
    }
  }
  const body = await response.json().catch(() => ({}));
  if (!response.ok) {
    const detail = typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail || body);
    throw new Error(`${response.status}: ${detail}`);
  }
  return body;
}

function hitCard(hit) {
  const card = document.createElement("button");
  card.type = "button";
  card.className = "hit";
  card.dataset.id = hit.id;
  card.dataset.row = rowOf(hit);
  const img = document.createElement("img");
  img.src = `/api/images/${rowOf(hit)}/thumbnail`;
  img.alt = hit.caption || hit.path;
  img.loading = "lazy";
  const meta = document.createElement("span");
  meta.className = "meta";
  const caption = document.createElement("span");
  caption.className = "caption";
  caption.textContent = hit.caption || hit.path.split("/").pop();
  const score = document.createElement("span");
  score.className = "score";
  const taken = hit.taken_at ? hit.taken_at.slice(0, 10) : "";
  score.textContent = hit.score == null ? taken : `score ${hit.score.toFixed(3)}${taken ? ` · ${taken}` : ""}`;
  const match = document.createElement("span");
  match.className = "match";
  if (hit.match != null) setMatch(match, hit.match);
  meta.append(caption, score, match);
  card.append(img, meta);
  markVideoCard(card, hit);
  card.addEventListener("click", () => openDetail(hit));
  return card;
}

function setMatch(element, probability) {  // null: none to show
  element.textContent = probability == null ? "" : probability < 0.005 ? "match <1%"
    : `match ${(probability * 100).toFixed(0)}%`;
  element.classList.remove("pending");
}

function show(grid, hits) {
  if (grid === $("results")) {
    for (const other of ["groups", "album-list", "album-bar"]) $(other).hidden = true;
    grid.hidden = false;
  }
  grid.replaceChildren(...hits.map(hitCard));
}

const MATCH_CHUNK = 4;  // hits scored a request: the first scores show within a second on a CPU

// The first stage answers at once; the match head (seconds on a CPU) then fills in each
// card's match a few hits at a time, and the cards are put in match order when all are in.
async function fillMatches(q, hits, ticket) {
  // keyed by the row scored: a video hit's moment
  const cards = new Map([...$("results").children].map((card) => [Number(card.dataset.row), card]));
  for (const card of cards.values()) {
    const match = card.querySelector(".match");
    match.textContent = "match …";
    match.classList.add("pending");
  }
  const found = new Map();
  for (let start = 0; start < hits.length; start += MATCH_CHUNK) {
    const params = new URLSearchParams({ q });
    for (const hit of hits.slice(start, start + MATCH_CHUNK)) params.append("ids", rowOf(hit));
    let body;
    try {
      body = await api(`/api/search/match?${params}`);
    } catch (error) {  // a query with no + text term has no match probability: the results stand
      if (ticket !== state.latest) return;
      for (const card of cards.values()) setMatch(card.querySelector(".match"), null);
      return say(`${hits.length} results for “${q}” (no match scores: ${error.message})`);
    }
    if (ticket !== state.latest) return;
    for (const { id, match } of body.matches) {
      found.set(id, match);
      const card = cards.get(id);
      card.dataset.match = match;
      setMatch(card.querySelector(".match"), match);
    }
    say(`${hits.length} results for “${q}”: match scores ${found.size} of ${hits.length}…`);
  }
  for (const [id, card] of cards) {
    if (!found.has(id)) card.querySelector(".match").textContent = "match: file unreadable";
  }
  const ordered = [...hits].sort((a, b) => (found.get(rowOf(b)) ?? -1) - (found.get(rowOf(a)) ?? -1) || b.score - a.score);
  $("results").replaceChildren(...ordered.map((hit) => cards.get(rowOf(hit))));
  say(`${hits.length} results for “${q}”, in match order`);
}

async function search(event) {
  event.preventDefault();
  const q = $("query").value.trim();
  if (!q) return say("Type what you are looking for.");
  const ticket = ++state.latest;  // a slower earlier search must not overwrite this one
  try {
    const sort = $("sort").value;
    const needs = sort !== "relevance" || $("where").value.trim() ? ["retrieval"] : [];
    say("Searching…" + loading($("where").value.trim() ? [...needs, "language_model"] : needs));
    const params = new URLSearchParams({ q, k: String(PAGE), sort });
    if (sort !== "relevance") params.set("min_match", String($("min-match").value / 100));
    const where = $("where").value.trim();
    if (where) params.append("where", where);
    const body = await api(`/api/search?${params}`);
    if (ticket !== state.latest) return;
    $("pager").hidden = true;
    state.query = q;
    show($("results"), body.results);
    const order = sort === "relevance" ? "" : `, ${sort} first, match at least ${$("min-match").value}%`;
    const asked = body.where ? [`only if “${where}”: ${body.where.passed} of ${body.where.asked} asked passed`
                                + (body.where.stopped === "budget" ? `, all ${body.where.budget} candidates asked` : "")] : [];
    const notes = [...body.notes, ...asked].length ? ` (${[...body.notes, ...asked].join("; ")})` : "";
    say((body.results.length ? `${body.results.length} results for “${q}”${order}` : `Nothing found for “${q}”${order}.`) + notes);
    if ($("rerank").checked && sort === "relevance" && body.results.length) await fillMatches(q, body.results, ticket);
  } catch (error) {
    if (ticket === state.latest) say(`Search failed: ${error.message}`, true);
  }
}

// Every indexed image, newest first, a page at a time.
async function browse(offset) {
  const ticket = ++state.latest;
  say("Loading images…");
  try {
    const order = $("sort").value === "oldest" ? "oldest" : "newest";
    const body = await api(`/api/images?${new URLSearchParams({ offset, limit: PAGE, sort: order })}`);
    if (ticket !== state.latest) return;
    state.browseOffset = offset;
    state.query = "";
    show($("results"), body.images.map((image) => ({ ...image, score: null })));
    const last = offset + body.images.length;
    $("page-info").textContent = body.total ? `${offset + 1}–${last} of ${body.total}` : "no images";
    $("previous").disabled = offset === 0;
    $("next").disabled = last >= body.total;
    $("pager").hidden = false;
    say(`All ${body.total} images, ${order} first`);
  } catch (error) {
    if (ticket === state.latest) say(`Could not list the images: ${error.message}`, true);
  }
}

// Groups of images that are the same picture, one row each, the suggested keep first.
async function duplicates() {
  const ticket = ++state.latest;
  say("Looking for duplicates…");
  const threshold = $("threshold").value.trim();
  try {
    const body = await api(`/api/duplicates${threshold ? `?${new URLSearchParams({ threshold })}` : ""}`);
    if (ticket !== state.latest) return;
    for (const other of ["results", "pager", "album-list", "album-bar"]) $(other).hidden = true;
    $("groups").hidden = false;
    $("group-list").replaceChildren(...body.groups.map(groupRow));
    const extra = body.groups.reduce((sum, group) => sum + group.images.length - 1, 0);
    say(body.groups.length ? `${body.groups.length} groups of duplicates: ${extra} images besides the ones to keep`
                           : "No duplicates found.");
  } catch (error) {
    if (ticket === state.latest) say(`Could not find duplicates: ${error.message}`, true);
  }
}

function groupRow(group) {
  const row = document.createElement("div");
  row.className = "group";
  row.dataset.keep = group.keep.id;
  const title = document.createElement("h3");
  title.textContent = `Keep ${group.keep.path.split("/").pop()} · ${group.images.length} images`;
  const cards = document.createElement("div");
  cards.className = "grid small";
  for (const image of group.images) {
    const card = hitCard({ id: image.id, path: image.path, caption: null, score: null });
    const kept = image.id === group.keep.id;
    card.classList.toggle("kept", kept);
    card.dataset.reason = image.reason;
    card.querySelector(".score").textContent = kept ? "keep" : `${image.reason} · similarity ${image.similarity.toFixed(2)}`;
    const why = document.createElement("span");
    why.className = "because";
    why.textContent = image.why;  // why it is kept, or how it differs from the kept image
    card.querySelector(".meta").append(why);
    cards.append(card);
  }
  row.append(title, cards);
  return row;
}

function setUpControls() {
  const slider = $("min-match");
  const showValue = () => { $("min-match-value").textContent = `${slider.value}%`; };
  slider.addEventListener("input", showValue);
  slider.addEventListener("change", () => { if ($("query").value.trim()) search(new Event("submit")); });
  $("sort").addEventListener("change", () => {
    slider.disabled = $("sort").value === "relevance";
    if (!$("pager").hidden) browse(0);
    else if ($("query").value.trim()) search(new Event("submit"));
  });
  $("where").addEventListener("keydown", (e) => { if (e.key === "Enter") search(e); });
  $("browse").addEventListener("click", () => browse(0));
  $("duplicates").addEventListener("click", duplicates);
  $("threshold-form").addEventListener("submit", (e) => { e.preventDefault(); duplicates(); });
  $("previous").addEventListener("click", () => browse(Math.max(0, state.browseOffset - PAGE)));
  $("next").addEventListener("click", () => browse(state.browseOffset + PAGE));
  showValue();
}

async function searchByImage(file) {
  if (!file) return;
  say(`Finding images similar to ${file.name}…` + loading(["encoder", "retrieval"]));
  const ticket = ++state.latest;
  const form = new FormData();
  form.append("file", file);
  try {
    const body = await api("/api/search/image?k=24", { method: "POST", body: form });
    if (ticket !== state.latest) return;
    $("pager").hidden = true;
    state.query = "";
    show($("results"), body.results);
    say(`${body.results.length} images similar to ${file.name}`);
  } catch (error) {
    if (ticket === state.latest) say(`Image search failed: ${error.message}`, true);
  }
}

async function openDetail(hit) {
  state.current = hit;
  state.history = [];
  showMedia(hit);
  $("detail-image").alt = hit.caption || hit.path;
  $("detail-title").textContent = hit.caption || "(no caption)";
  $("detail-path").textContent = hit.path;
  showText(hit);
  $("chat-log").replaceChildren();
  $("similar").replaceChildren();
  $("detail").showModal();
  $("question").focus();
  showWhy(hit, state.query);
  try {
    const body = await api(`/api/images/${hit.id}/similar?${new URLSearchParams({ k: 8, ...timeParams(hit) })}`);
    show($("similar"), body.results);
  } catch (error) {
    $("similar").textContent = `Could not load similar images: ${error.message}`;
  }
}

// The text read in the image, the words the query matched marked.
function showText(hit) {
  const box = $("detail-text");
  box.hidden = !hit.text;
  if (!hit.text) return box.replaceChildren();
  const parts = [document.createTextNode("Text in the image: ")];
  // the marks count characters (code points), as Python does; a JavaScript string counts
  // UTF-16 units, two for a character past U+FFFF (rare CJK, emoji)
  const chars = Array.from(hit.text);
  const slice = (from, to) => chars.slice(from, to).join("");
  let at = 0;
  for (const [start, end] of hit.text_marks || []) {
    parts.push(document.createTextNode(slice(at, start)));
    const mark = document.createElement("mark");
    mark.textContent = slice(start, end);
    parts.push(mark);
    at = end;
  }
  parts.push(document.createTextNode(slice(at)));
  box.replaceChildren(...parts);
}

// Why this hit: the explanation's grid drawn over the picture, one canvas pixel a cell,
// stretched (and smoothed) by the browser to the picture's size.
async function showWhy(hit, q) {
  const canvas = $("overlay");
  canvas.getContext("2d").clearRect(0, 0, canvas.width, canvas.height);
  delete canvas.dataset.peak;
  $("why").textContent = "";
  if (!q || hit.score === null) return;  // a listing (filters alone): no text to find
  $("why").textContent = "Finding where it matches…";
  try {
    const body = await api(`/api/images/${hit.id}/explain?${new URLSearchParams({ q, ...timeParams(hit) })}`);
    if (state.current !== hit) return;
    const rows = body.grid.length;
    const cols = body.grid[0].length;
    canvas.width = cols;
    canvas.height = rows;
    const context = canvas.getContext("2d");
    let peak = [0, 0, -1];
    body.grid.forEach((row, r) => row.forEach((value, c) => {
      context.fillStyle = `rgba(230, 30, 30, ${(value * 0.6).toFixed(3)})`;
      context.fillRect(c, r, 1, 1);
      if (value > peak[2]) peak = [r, c, value];
    }));
    canvas.dataset.peak = `${peak[0]},${peak[1]}`;
    $("why").textContent = `Why: query vector ${body.token} scored best (${body.score.toFixed(3)}); ` +
      `red marks where the match head finds “${body.query}”.`;
  } catch (error) {
    if (state.current === hit) $("why").textContent = `No explanation: ${error.message}`;
  }
}

async function ask(event) {
  event.preventDefault();
  const question = $("question").value.trim();
  if (!question || !state.current) return;
  const item = document.createElement("li");
  const q = document.createElement("div");
  q.className = "q";
  q.textContent = question;
  const a = document.createElement("div");
  a.className = "a";
  a.textContent = "…" + loading(["language_model"]);
  item.append(q, a);
  $("chat-log").append(item);
  $("question").value = "";
  try {
    const body = await api(`/api/images/${state.current.id}/ask`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ question, history: state.history, ...timeParams(state.current) }),
    });
    a.textContent = body.answer || "(no answer)";
    state.history.push({ question, answer: body.answer });
  } catch (error) {
    a.textContent = `Could not answer: ${error.message}`;
  }
}

async function checkIndex() {
  try {
    const stats = await api("/api/stats");
    state.parts = stats.model_parts;
    const videos = stats.videos ? ` and ${stats.videos} videos` : "";
    if (stats.images + (stats.videos || 0) === 0) say("The index is empty: run `blip2-search index PATH`, then search here.");
    else say(`${stats.images} images${videos} indexed. Type a description to search them.`);
  } catch (error) {
    say(`The server is not answering: ${error.message}`, true);
  }
}

function setUpDrop() {
  const drop = $("drop");
  for (const name of ["dragenter", "dragover"]) {
    drop.addEventListener(name, (e) => { e.preventDefault(); drop.classList.add("over"); });
  }
  for (const name of ["dragleave", "drop"]) {
    drop.addEventListener(name, (e) => { e.preventDefault(); drop.classList.remove("over"); });
  }
  drop.addEventListener("drop", (e) => searchByImage(e.dataTransfer.files[0]));
  drop.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") $("file").click(); });
  $("file").addEventListener("change", (e) => searchByImage(e.target.files[0]));
}

$("search-form").addEventListener("submit", search);
$("ask-form").addEventListener("submit", ask);
setUpDrop();
setUpControls();
checkIndex();
