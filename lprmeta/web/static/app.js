// lprmeta's web page: one script for every page, no framework, no build step.
//
// Every value from a camera (plates, camera names, raw fields) reaches the page
// through textContent or setAttribute, never innerHTML: it is text, whatever it
// holds. URLs are built from our own paths with encodeURIComponent.
"use strict";

(() => {
  const LIVE_ROWS = 200; // rows kept on the live page: a wall screen open for a day
  const LIVE_FIRST = 50; // rows fetched when the live page opens or reconnects
  const POLL_MS = 2000; // the cameras page's refresh
  // Live reads are drawn together at most this often (a read at a quiet gate is drawn
  // at once), and a live row's pictures are fetched once it has been in sight this
  // long. At a busy site (200 reads a second in bench/web_bench.py) a row is in sight
  // for a few tens of milliseconds, nobody can look at it, and fetching and decoding
  // its two pictures anyway cost the browser more than a core and the daemon a tenth
  // of one: on a 2-core box the rows fell seconds behind. Measured there (2026-12-07,
  // alternating runs): Chromium 110-112% -> 67-70% of a core, the daemon 57.5% ->
  // 46-48%, read -> row p50 / p99 503-1,690 / 1,922-3,865 ms -> 95-102 / 184-189 ms.
  // Of that, the drawing every 100 ms (against each read drawn as it comes, the
  // pictures waiting in both): Chromium 89-91% -> 65-67%, p99 264-278 -> 162-178 ms.
  const DRAW_MS = 100;
  const LOOK_MS = 200;
  const main = document.getElementById("main");
  const statusBox = document.getElementById("status");

  // ------------------------------------------------------------------ helpers

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "class") node.className = value;
      else if (key === "text") node.textContent = String(value);
      else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value === true ? "" : String(value));
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  class ApiError extends Error {
    constructor(status, message, parameter) {
      super(message);
      this.status = status;
      this.parameter = parameter;
    }
  }

  async function api(path, options = {}) {
    const headers = { Accept: "application/json", ...(options.headers || {}) };
    const response = await fetch(path, { credentials: "same-origin", ...options, headers });
    let body = null;
    try {
      body = await response.json();
    } catch (_) {
      body = null;
    }
    if (!response.ok) {
      const message = (body && body.error) || response.statusText || "request failed";
      throw new ApiError(response.status, message, body && body.parameter);
    }
    return body;
  }

  let csrfToken = null;
  async function change(method, path, body) {
    // A POST or DELETE with the CSRF token; fetched again once if the daemon restarted.
    for (let attempt = 0; attempt < 2; attempt += 1) {
      if (csrfToken === null) csrfToken = (await api("/api/session")).csrf_token;
      try {
        return await api(path, {
          method,
          headers: { "Content-Type": "application/json", "X-CSRF-Token": csrfToken },
          body: body === undefined ? undefined : JSON.stringify(body),
        });
      } catch (err) {
        if (err.status === 403 && attempt === 0) {
          csrfToken = null;
          continue;
        }
        throw err;
      }
    }
    throw new ApiError(403, "CSRF token refused");
  }

  const timeFormat = new Intl.DateTimeFormat(undefined, {
    year: "numeric",
    month: "2-digit",
    day: "2-digit",
    hour: "2-digit",
    minute: "2-digit",
    second: "2-digit",
  });
  const clockFormat = new Intl.DateTimeFormat(undefined, {
    hour: "2-digit",
    minute: "2-digit",
    second: "2-digit",
  });

  function isToday(date) {
    const now = new Date();
    return date.toDateString() === now.toDateString();
  }

  function when(iso) {
    // A time in the browser's zone; the ISO text (UTC) as its title.
    if (!iso) return el("span", { class: "muted", text: "—" });
    const date = new Date(iso);
    if (Number.isNaN(date.getTime())) return el("span", { text: iso });
    const shown = isToday(date) ? clockFormat.format(date) : timeFormat.format(date);
    return el("time", { datetime: iso, title: iso, text: shown });
  }

  function ago(iso) {
    if (!iso) return "";
    const seconds = Math.max(0, (Date.now() - new Date(iso).getTime()) / 1000);
    if (seconds < 60) return `${Math.round(seconds)} s`;
    if (seconds < 3600) return `${Math.round(seconds / 60)} min`;
    if (seconds < 86400) return `${(seconds / 3600).toFixed(1)} h`;
    return `${(seconds / 86400).toFixed(1)} days`;
  }

  function plateBadge(text, extra) {
    if (!text) return el("span", { class: `no-plate ${extra || ""}`.trim(), text: "no plate" });
    return el("span", { class: `plate ${extra || ""}`.trim(), text });
  }

  function eventLink(ev) {
    return `/events/${encodeURIComponent(ev.id)}`;
  }

  function pictureUrl(ev, index) {
    return `/api/events/${encodeURIComponent(ev.id)}/pictures/${index}`;
  }

  function confidenceText(value) {
    if (typeof value !== "number") return null;
    return `${Math.round(value <= 1 ? value * 100 : value)} %`;
  }

  function badges(ev) {
    const out = [];
    for (const m of ev.matches || []) {
      const title = m.distance ? `${m.entry} (${m.distance} edit away)` : m.entry;
      out.push(el("span", { class: "badge match", title, text: m.label ? `${m.list}: ${m.label}` : m.list }));
    }
    if (ev.list && ev.list !== "unknown") out.push(el("span", { class: `badge cam-${ev.list}`, text: ev.list }));
    if (ev.kind && ev.kind !== "plate") out.push(el("span", { class: "badge kind", text: ev.kind }));
    return out;
  }

  function thumbnails(ev, limit, later) {
    // later: inSight()'s watcher, which gives each picture its src once it has been in
    // sight for a while (the live page); without one, the browser's own lazy loading.
    const images = ev.images || [];
    const out = [];
    images.slice(0, limit).forEach((image, index) => {
      if (image.missing) {
        out.push(el("span", { class: "missing", text: `${image.role}: picture missing (${image.missing})` }));
      } else {
        const img = el("img", {
          class: `thumb role-${image.role}`,
          alt: `${image.role} picture`,
          loading: "lazy",
          decoding: "async",
        });
        if (later) {
          img.dataset.src = pictureUrl(ev, index);
          later.observe(img);
        } else {
          img.setAttribute("src", pictureUrl(ev, index));
        }
        out.push(shownOrSaid(img, image.role));
      }
    });
    return out;
  }

  function shownOrSaid(img, role) {
    // A picture that did not load is tried once more a few seconds later (the daemon
    // may have been restarting); then it says it cannot be shown (gone from the disk,
    // not an image).
    let tried = false;
    img.addEventListener("error", () => {
      if (!tried) {
        tried = true;
        const src = img.getAttribute("src");
        setTimeout(() => img.setAttribute("src", src), 3000);
        return;
      }
      img.replaceWith(el("span", { class: "missing", text: `${role}: picture cannot be shown` }));
    });
    return img;
  }

  function inSight(ms) {
    // An observer that sets an image's src (from data-src) once the image has been in
    // the viewport for ms without a break; forget(img) when its row leaves the page.
    const timers = new Map();
    const observer = new IntersectionObserver((entries) => {
      for (const entry of entries) {
        const img = entry.target;
        if (entry.isIntersecting && !timers.has(img)) {
          timers.set(img, setTimeout(() => {
            timers.delete(img);
            observer.unobserve(img);
            img.setAttribute("src", img.dataset.src);
          }, ms));
        } else if (!entry.isIntersecting && timers.has(img)) {
          clearTimeout(timers.get(img));
          timers.delete(img);
        }
      }
    });
    return {
      observe: (img) => observer.observe(img),
      forget: (img) => {
        clearTimeout(timers.get(img));
        timers.delete(img);
        observer.unobserve(img);
      },
    };
  }

  function readCard(ev, later) {
    const facts = [
      el("span", { class: "camera", text: ev.camera }),
      when(ev.received),
      ev.direction ? el("span", { class: "direction", text: ev.direction }) : null,
      confidenceText(ev.confidence) ? el("span", { class: "confidence", text: confidenceText(ev.confidence) }) : null,
      ev.country ? el("span", { class: "country", text: ev.country }) : null,
    ];
    const card = el(
      "article",
      { class: "read", "data-id": ev.id, "data-received": ev.received },
      el("a", { class: "plate-link", href: eventLink(ev), "aria-label": `read ${ev.plate || ev.kind} at ${ev.camera}` }, plateBadge(ev.plate)),
      el("div", { class: "facts" }, facts, el("div", { class: "badges" }, badges(ev))),
      el("div", { class: "pictures" }, thumbnails(ev, 2, later)),
    );
    return card;
  }

  function setStatus(text, state) {
    if (!statusBox) return;
    statusBox.textContent = text;
    statusBox.dataset.state = state;
  }

  function showError(where, err) {
    const box = el("p", { class: "error", role: "alert", text: `${err.message || err}` });
    if (err.parameter) box.append(el("span", { class: "muted", text: ` (${err.parameter})` }));
    where.replaceChildren(box);
  }

  function heading(text) {
    const h1 = main.querySelector("h1") || el("h1");
    h1.textContent = text;
    return h1;
  }

  // ------------------------------------------------------------------ live

  async function livePage() {
    const h1 = heading("Live reads");
    const list = el("section", { id: "reads", class: "reads", role: "feed", "aria-label": "Newest reads first" });
    const note = el("p", { class: "muted", text: "Newest first; the page updates by itself." });
    main.replaceChildren(h1, note, list);
    const rows = new Map(); // id -> card, the rows on the page
    const later = inSight(LOOK_MS);

    function place(ev, stamp) {
      if (!ev || !ev.id || rows.has(ev.id)) return;
      const card = readCard(ev, later);
      if (stamp) card.dataset.shown = String(Date.now());
      // Newest first by received time; a live event almost always goes on top.
      let before = list.firstElementChild;
      while (before && before.dataset.received > (ev.received || "")) before = before.nextElementSibling;
      list.insertBefore(card, before);
      rows.set(ev.id, card);
      while (rows.size > LIVE_ROWS) {
        const last = list.lastElementChild;
        rows.delete(last.dataset.id);
        last.querySelectorAll("img[data-src]").forEach(later.forget);
        last.remove();
      }
    }

    async function backfill() {
      try {
        const page = await api(`/api/events?limit=${LIVE_FIRST}`);
        for (const ev of page.events) place(ev, false);
        if (!rows.size) list.replaceChildren(el("p", { class: "empty muted", text: "No reads yet." }));
      } catch (err) {
        setStatus(`cannot load reads: ${err.message}`, "down");
      }
    }

    // Reads that came since the last drawing, oldest first; drawn together.
    let waiting = [];
    let timer = null;
    let drawn = 0;
    function draw() {
      timer = null;
      drawn = Date.now();
      const batch = waiting;
      waiting = [];
      const empty = list.querySelector(".empty");
      if (empty && batch.length) empty.remove();
      for (const ev of batch) place(ev, true);
    }

    await backfill();
    let source = null;
    let lost = false;
    function connect() {
      source = new EventSource("/api/stream");
      source.addEventListener("open", () => {
        setStatus("live", "up");
        if (lost) {
          lost = false;
          backfill(); // what came while the page was away
        }
      });
      source.addEventListener("event", (message) => {
        let ev = null;
        try {
          ev = JSON.parse(message.data);
        } catch (_) {
          return;
        }
        waiting.push(ev);
        if (timer === null) timer = setTimeout(draw, Math.max(0, drawn + DRAW_MS - Date.now()));
      });
      source.addEventListener("error", () => {
        lost = true;
        setStatus("reconnecting…", "down");
        if (source.readyState === EventSource.CLOSED) {
          // The server answered with an error (a proxy while the daemon restarts):
          // the browser gives up on its own, so start again.
          setTimeout(connect, 3000);
        }
      });
    }
    connect();
  }

  // ------------------------------------------------------------------ search

  const FILTERS = ["plate", "tolerance", "camera", "kind", "list", "since", "until"];
  const KINDS = ["plate", "parking", "counting", "list", "attributes", "violation", "event"];
  const LIST_TYPES = ["white", "black", "visitor", "unknown", "none"];

  function apiQuery(params) {
    // The page's own parameters as the API takes them (times in UTC).
    const query = new URLSearchParams();
    for (const name of FILTERS) {
      const value = params.get(name);
      if (!value) continue;
      if (name === "since" || name === "until") {
        const date = new Date(value);
        query.set(name, Number.isNaN(date.getTime()) ? value : date.toISOString());
      } else {
        query.set(name, value);
      }
    }
    return query;
  }

  function field(label, input) {
    return el("label", { class: "field" }, el("span", { text: label }), input);
  }

  function select(name, options, current, anyText) {
    const node = el("select", { name });
    node.append(el("option", { value: "", text: anyText }));
    for (const value of options) {
      node.append(el("option", { value, selected: value === current, text: value }));
    }
    return node;
  }

  async function searchPage() {
    const params = new URLSearchParams(window.location.search);
    const h1 = heading("Search");
    let cameras = [];
    try {
      cameras = (await api("/api/cameras")).cameras.map((c) => c.name);
    } catch (_) {
      cameras = [];
    }
    const form = el(
      "form",
      { class: "search", method: "get", action: "/search", role: "search" },
      field("Plate", el("input", { name: "plate", value: params.get("plate") || "", maxlength: 64, placeholder: "AB12CD or AB*", autocomplete: "off" })),
      el(
        "label",
        { class: "check" },
        el("input", { type: "checkbox", name: "tolerance", value: "1", checked: params.get("tolerance") === "1" }),
        el("span", { text: "also one character off (look-alikes are always folded: O=0, I=1, B=8…)" }),
      ),
      field("Camera", select("camera", cameras, params.get("camera"), "any camera")),
      field("Kind", select("kind", KINDS, params.get("kind"), "any kind")),
      field("Camera's list", select("list", LIST_TYPES, params.get("list"), "any")),
      field("From", el("input", { type: "datetime-local", name: "since", value: params.get("since") || "", step: 1 })),
      field("To", el("input", { type: "datetime-local", name: "until", value: params.get("until") || "", step: 1 })),
      el("div", { class: "actions" }, el("button", { type: "submit", text: "Search" }), el("a", { href: "/search", text: "Clear" })),
    );
    const results = el("section", { id: "results", class: "reads", "aria-label": "Results" });
    const tools = el("p", { class: "tools" });
    main.replaceChildren(h1, form, tools, results);

    const query = apiQuery(params);
    const cursor = params.get("cursor");
    const pageQuery = new URLSearchParams(query);
    if (cursor) pageQuery.set("cursor", cursor);
    let page;
    try {
      page = await api(`/api/events?${pageQuery}`);
    } catch (err) {
      showError(results, err);
      return;
    }
    tools.replaceChildren(
      el("a", { href: window.location.pathname + window.location.search, id: "search-link", text: "Link to this search" }),
      " · ",
      el("a", { href: `/api/events.csv?${query}`, id: "csv", download: "lprmeta-events.csv", text: "Download CSV" }),
    );
    if (!page.events.length) {
      results.replaceChildren(el("p", { class: "empty muted", text: cursor ? "No more reads." : "No reads found." }));
    } else {
      results.replaceChildren(...page.events.map((ev) => readCard(ev)));
    }
    const nav = el("nav", { class: "pager", "aria-label": "Pages of results" });
    if (cursor) {
      const first = new URLSearchParams(params);
      first.delete("cursor");
      nav.append(el("a", { href: `/search?${first}`, text: "← Newest" }));
    }
    if (page.next_cursor) {
      const next = new URLSearchParams(params);
      next.set("cursor", page.next_cursor);
      nav.append(el("a", { href: `/search?${next}`, rel: "next", id: "next-page", text: "Older →" }));
    }
    main.append(nav);
  }

  // ------------------------------------------------------------------ one read

  function valueText(value) {
    if (value === null || value === undefined) return "—";
    if (typeof value === "object") return JSON.stringify(value);
    return String(value);
  }

  function table(caption, entries) {
    const body = el("tbody");
    for (const [key, value] of entries) {
      body.append(el("tr", {}, el("th", { scope: "row", text: key }), el("td", {}, value instanceof Node ? value : valueText(value))));
    }
    return el("table", { class: "fields" }, el("caption", { text: caption }), body);
  }

  async function eventPage() {
    const id = decodeURIComponent(window.location.pathname.split("/")[2] || "");
    const h1 = heading("A read");
    main.replaceChildren(h1);
    let ev;
    try {
      ev = await api(`/api/events/${encodeURIComponent(id)}`);
    } catch (err) {
      const box = el("div");
      main.append(box);
      showError(box, err);
      return;
    }
    h1.replaceChildren(plateBadge(ev.plate, "large"), " ", el("span", { class: "muted", text: `at ${ev.camera}` }));
    document.title = `${ev.plate || ev.kind} · lprmeta`;
    const skip = new Set(["raw", "details", "images", "matches"]);
    const fields = Object.entries(ev)
      .filter(([key]) => !skip.has(key))
      .map(([key, value]) => [key, key === "received" || key === "time" ? when(value) : value]);
    if ((ev.matches || []).length) fields.push(["lists", el("span", {}, badges({ matches: ev.matches }))]);
    const pictures = el("section", { class: "full-pictures", "aria-label": "Pictures" });
    (ev.images || []).forEach((image, index) => {
      const caption = el("figcaption", { text: `${image.role}${image.bytes ? ` · ${image.bytes} bytes` : ""}` });
      if (image.missing) {
        pictures.append(el("figure", {}, el("p", { class: "missing", text: `picture missing: ${image.missing}` }), caption));
      } else {
        const img = shownOrSaid(el("img", { class: `full role-${image.role}`, src: pictureUrl(ev, index), alt: `${image.role} picture` }), image.role);
        pictures.append(el("figure", {}, img, caption));
      }
    });
    if (!(ev.images || []).length) pictures.append(el("p", { class: "muted", text: "This read has no pictures." }));
    const others = el("section", { class: "reads", id: "same-plate", "aria-label": "Other reads of this plate" });
    main.append(
      el("div", { class: "columns" }, el("div", {}, table("The read", fields)), pictures),
      table("Details (as lprmeta reads them)", Object.entries(ev.details || {})),
      table("Raw fields (as the camera sent them)", Object.entries(ev.raw || {})),
      el("h2", { text: "Other reads of this plate, last 30 days" }),
      others,
    );
    if (!ev.plate) {
      others.append(el("p", { class: "muted", text: "No plate to look for." }));
      return;
    }
    try {
      const query = new URLSearchParams({ plate: ev.plate, since: "30d", limit: "50" });
      const page = await api(`/api/events?${query}`);
      const rest = page.events.filter((other) => other.id !== ev.id);
      others.replaceChildren(...(rest.length ? rest.map((ev) => readCard(ev)) : [el("p", { class: "muted", text: "None." })]));
    } catch (err) {
      showError(others, err);
    }
  }

  // ------------------------------------------------------------------ cameras

  function transportLine(name, t) {
    const state = t.state || "unknown";
    const reason = t.reason ? ` (${t.reason})` : "";
    return el(
      "li",
      { class: `transport state-${state}` },
      el("span", { class: "pill", text: `${name}: ${state}${reason}` }),
      " since ",
      when(t.since),
      el("span", { class: "muted", text: ` (${ago(t.since)})` }),
    );
  }

  function cameraCard(cam) {
    const last = cam.last_stored;
    const transports = el("ul", { class: "transports" });
    for (const [name, t] of Object.entries(cam.transports || {})) transports.append(transportLine(name, t));
    const today = cam.today || { reads: 0, pictures_missing: 0 };
    return el(
      "article",
      { class: `camera-card ${cam.available ? "ok" : "down"}`, "data-camera": cam.name },
      el("h2", {}, el("span", { class: "camera-name", text: cam.name }), " ", el("span", { class: "pill availability", text: cam.available ? "available" : "not available" })),
      transports,
      el(
        "dl",
        { class: "numbers" },
        el("dt", { text: "Last read" }),
        el("dd", {}, last ? el("a", { href: eventLink(last) }, plateBadge(last.plate, "small"), " ", when(last.received)) : "none stored"),
        el("dt", { text: "Reads today" }),
        el("dd", { class: "reads-today", text: today.reads }),
        el("dt", { text: "Pictures missing today" }),
        el("dd", { class: today.pictures_missing ? "warn" : "", text: today.pictures_missing }),
        el("dt", { text: "Reconnects" }),
        el("dd", { text: cam.reconnects || 0 }),
      ),
    );
  }

  function daemonCard(health) {
    const problems = el("ul", { class: "problems" });
    for (const problem of health.problems || []) problems.append(el("li", { text: problem }));
    const sinks = el("ul", { class: "transports" });
    for (const [name, s] of Object.entries(health.sinks || {})) sinks.append(transportLine(name, s));
    const parts = el("tbody");
    for (const [name, part] of Object.entries(health.parts || {})) {
      parts.append(el("tr", {}, el("th", { scope: "row", text: name }), el("td", { text: part.state || "" }), el("td", { text: part.failures || 0 })));
    }
    return el(
      "article",
      { class: `camera-card daemon status-${health.status}`, id: "daemon" },
      el("h2", {}, "This daemon ", el("span", { class: "pill", text: health.status })),
      el("p", { class: "muted", text: `up for ${ago(new Date(Date.now() - health.uptime_seconds * 1000).toISOString())}` }),
      (health.unavailable || []).length ? el("p", { class: "warn", text: `Not available: ${health.unavailable.join(", ")}` }) : null,
      problems,
      sinks,
      el("details", {}, el("summary", { text: "Parts" }), el("table", { class: "fields" }, el("thead", {}, el("tr", {}, el("th", { text: "part" }), el("th", { text: "state" }), el("th", { text: "failures" }))), parts)),
    );
  }

  async function camerasPage() {
    const h1 = heading("Cameras");
    const grid = el("section", { id: "cameras", class: "cameras", "aria-label": "Cameras" });
    const daemonBox = el("section", { id: "daemon-health", "aria-label": "This daemon" });
    main.replaceChildren(h1, grid, daemonBox);
    let shown = "";
    let drawn = 0;
    async function refresh() {
      try {
        const [cams, health] = await Promise.all([api("/api/cameras"), api("/api/health")]);
        setStatus(`updated ${clockFormat.format(new Date())}`, "up");
        const text = JSON.stringify([cams, health.status, health.problems, health.sinks]);
        // Drawn again when something changed, and every 10 s for the "(5 min)" ages
        // (not at every poll: a keyboard user's focus would jump away).
        if (text !== shown || Date.now() - drawn > 10000) {
          shown = text;
          drawn = Date.now();
          grid.replaceChildren(...cams.cameras.map(cameraCard));
          daemonBox.replaceChildren(daemonCard(health));
        }
      } catch (err) {
        setStatus(`the daemon does not answer (${err.message}); trying again`, "down");
      }
    }
    await refresh();
    setInterval(refresh, POLL_MS);
  }

  // ------------------------------------------------------------------ plate lists

  function listSection(list, reload) {
    const message = el("p", { class: "message", role: "status" });
    const rows = el("tbody");
    for (const entry of list.entries) {
      const remove =
        list.editable && entry.source === "file"
          ? el("button", {
              type: "button",
              class: "remove",
              "aria-label": `Remove ${entry.plate} from ${list.name}`,
              text: "Remove",
              onclick: async () => {
                try {
                  await change("DELETE", `/api/lists/${encodeURIComponent(list.name)}/plates?plate=${encodeURIComponent(entry.plate)}`);
                  await reload();
                } catch (err) {
                  message.textContent = `Not removed: ${err.message}`;
                }
              },
            })
          : el("span", { class: "muted", text: entry.source === "config" ? "in the configuration" : "" });
      rows.append(
        el(
          "tr",
          { class: entry.expired ? "expired" : "" },
          el("td", {}, plateBadge(entry.plate, "small")),
          el("td", { text: entry.label || "" }),
          el("td", {}, entry.expires || "", entry.expired ? el("span", { class: "badge", text: "expired" }) : null),
          el("td", {}, remove),
        ),
      );
    }
    const scope = list.cameras.length ? `cameras: ${list.cameras.join(", ")}` : "all cameras";
    const facts = [scope, list.tolerance ? `${list.tolerance} edit(s) of tolerance` : "exact", list.lookalikes ? "look-alikes folded" : "look-alikes distinct"];
    const section = el(
      "section",
      { class: "plate-list", "data-list": list.name, "aria-label": `List ${list.name}` },
      el("h2", { text: list.name }),
      el("p", { class: "muted" }, facts.join(" · "), el("br"), list.file ? `file: ${list.file}` : "defined in the configuration file: read-only here (give it a file to edit it)"),
      el(
        "table",
        { class: "entries" },
        el("thead", {}, el("tr", {}, el("th", { text: "Plate" }), el("th", { text: "Label" }), el("th", { text: "Expires" }), el("th", { text: "" }))),
        rows,
      ),
    );
    if (list.editable) {
      const form = el(
        "form",
        { class: "add-plate" },
        field("Plate", el("input", { name: "plate", required: true, maxlength: 32, autocomplete: "off" })),
        field("Label", el("input", { name: "label", maxlength: 200 })),
        field("Expires (optional)", el("input", { type: "date", name: "expires" })),
        el("div", { class: "actions" }, el("button", { type: "submit", text: `Add to ${list.name}` })),
      );
      form.addEventListener("submit", async (event) => {
        event.preventDefault();
        const data = new FormData(form);
        try {
          await change("POST", `/api/lists/${encodeURIComponent(list.name)}/plates`, {
            plate: data.get("plate"),
            label: data.get("label") || null,
            expires: data.get("expires") || null,
          });
          await reload();
        } catch (err) {
          message.textContent = `Not added: ${err.message}`;
        }
      });
      section.append(form);
    }
    section.append(message);
    return section;
  }

  async function listsPage() {
    const h1 = heading("Plate lists");
    const box = el("div", { id: "lists" });
    main.replaceChildren(h1, box);
    async function reload() {
      try {
        const { lists } = await api("/api/lists");
        if (!lists.length) {
          box.replaceChildren(el("p", { class: "muted", text: "No plate lists are configured ([[lists]] in the configuration file)." }));
          return;
        }
        box.replaceChildren(...lists.map((list) => listSection(list, reload)));
      } catch (err) {
        showError(box, err);
      }
    }
    await reload();
  }

  // ------------------------------------------------------------------ start

  const pages = { live: livePage, search: searchPage, event: eventPage, cameras: camerasPage, lists: listsPage };
  const page = document.body.dataset.page;
  for (const link of document.querySelectorAll("[data-nav]")) {
    if (link.dataset.nav === page) link.setAttribute("aria-current", "page");
  }
  (pages[page] || livePage)().catch((err) => showError(main, err));
})();
