// blip2-search web page, videos: a hit's duration and moment on its card, and in the detail
// view the player started at the moment found, with a strip of the moments that matched
// (each seeks the player). Loaded before app.js, which calls these.

// 12.5 -> "0:12", 3725 -> "1:02:05": a time in a video.
function clock(seconds) {
  const s = Math.max(0, Math.floor(seconds || 0));
  const hms = [Math.floor(s / 3600), Math.floor(s / 60) % 60, s % 60];
  const pad = (n) => String(n).padStart(2, "0");
  return hms[0] ? `${hms[0]}:${pad(hms[1])}:${pad(hms[2])}` : `${hms[1]}:${pad(hms[2])}`;
}

const isVideo = (hit) => hit.media === "video";
const rowOf = (hit) => hit.moment ?? hit.id;  // a video hit's score, match and picture are its moment's
const momentAt = (hit) => hit.time_s ?? 0;

// The card of a video hit: its duration over the picture, and where its moment starts.
function markVideoCard(card, hit) {
  if (!isVideo(hit)) return;
  card.classList.add("video");
  const badge = document.createElement("span");
  badge.className = "duration";
  badge.textContent = `▶ ${clock(hit.duration_s)}`;
  card.prepend(badge);
  if (hit.time_s != null) {
    const at = document.createElement("span");
    at.className = "moment-at";
    at.textContent = `at ${clock(hit.time_s)}`;
    card.querySelector(".meta").append(at);
  }
}

// The detail view's picture: the video playing from its moment, or the image.
function showMedia(hit) {
  const player = $("detail-video");
  const picture = $("detail-image");
  const strip = $("moments");
  picture.hidden = isVideo(hit);
  $("ask-title").textContent = isVideo(hit) ? "Ask about the frame shown" : "Ask about this image";
  player.hidden = !isVideo(hit);
  strip.replaceChildren();
  strip.hidden = !isVideo(hit);
  if (!isVideo(hit)) {
    player.removeAttribute("src");
    player.load();
    picture.src = `/api/images/${hit.id}/file`;
    return;
  }
  player.src = `/api/images/${hit.id}/file#t=${momentAt(hit)}`;
  player.addEventListener("play", () => clearOverlay(), { once: true });
  for (const moment of hit.moments || []) strip.append(momentButton(hit, moment));
}

function momentButton(hit, moment) {
  const button = document.createElement("button");
  button.type = "button";
  button.className = "moment";
  button.dataset.time = moment.time_s;
  button.classList.toggle("current", moment.time_s === momentAt(hit));
  const img = document.createElement("img");
  img.src = `/api/images/${moment.id}/thumbnail`;
  img.alt = `the moment at ${clock(moment.time_s)}`;
  const label = document.createElement("span");
  label.textContent = clock(moment.time_s) + (moment.score != null ? ` · ${moment.score.toFixed(3)}` : "");
  button.append(img, label);
  button.addEventListener("click", () => seek(moment.time_s));
  return button;
}

function seek(seconds) {
  const player = $("detail-video");
  player.currentTime = seconds;
  clearOverlay();
  for (const button of $("moments").children) {
    button.classList.toggle("current", Number(button.dataset.time) === seconds);
  }
}

function clearOverlay() {
  const canvas = $("overlay");
  canvas.getContext("2d").clearRect(0, 0, canvas.width, canvas.height);
}

// What a question or similar-images request adds for a video: the time shown now.
function timeParams(hit) {
  if (!isVideo(hit)) return {};
  const player = $("detail-video");
  return { at: player.readyState ? player.currentTime : momentAt(hit) };
}
