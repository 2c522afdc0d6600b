// Train-station monitor: show one blacklisted person at a time, each titled by the lists they are on,
// rotating every `data-every` seconds, and refresh the list from the JSON feed every `data-refresh`
// seconds. The clock shows the time the list is as of (the feed's `as_of`, the service's clock), never
// the wall time: a monitor of a simulated world shows it as it stood then. Without JavaScript the page
// shows the first person and reloads itself every minute.
(function () {
  "use strict";
  const monitor = document.querySelector(".monitor");
  if (!monitor) return;
  const every = Math.max(1, parseFloat(monitor.dataset.every || "6")) * 1000;
  const refresh = Math.max(2, parseFloat(monitor.dataset.refresh || "60")) * 1000;
  const pos = document.getElementById("pos");
  const total = document.getElementById("total");
  const clock = document.getElementById("clock");
  const clockDay = document.getElementById("clock-day");
  let index = 0;

  function slides() {
    return Array.from(monitor.querySelectorAll(".slide"));
  }

  function show(i) {
    const all = slides();
    if (!all.length) return;
    index = ((i % all.length) + all.length) % all.length;
    all.forEach((s, k) => s.classList.toggle("current", k === index));
    pos.textContent = String(index + 1);
    total.textContent = String(all.length);
  }

  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }

  function slide(p) {
    const li = el("li", "slide");
    const face = el("div", "face");
    face.setAttribute("aria-hidden", "true");
    const svg = new DOMParser().parseFromString(p.avatar, "image/svg+xml").documentElement;
    face.appendChild(document.importNode(svg, true));
    const who = el("div", "who");
    const lists = el("p", "slide-list");
    (p.lists || []).forEach((label) => lists.appendChild(el("span", "list-label", label)));
    who.appendChild(lists);
    const name = el("p", "name");
    const zh = el("span", "zh", p.name);
    zh.lang = "zh-Hans";
    name.appendChild(zh);
    who.append(name, el("p", "latin", p.name_latin || ""), el("p", "rid", p.id));
    const reasons = el("ul", "reasons");
    p.reasons.forEach((r) => reasons.appendChild(el("li", "", r)));
    who.append(reasons, el("p", "since", "listed since " + p.since));
    li.append(face, who);
    return li;
  }

  async function reload() {
    try {
      const response = await fetch(monitor.dataset.feed, { cache: "no-store" });
      if (!response.ok) return;
      const data = await response.json();
      const [day, time] = String(data.as_of || "").split(" ");
      if (day && time) {
        clockDay.textContent = day;
        clock.textContent = time;
      }
      let list = monitor.querySelector(".slides");
      if (!list) {
        list = el("ol", "slides");
        const empty = monitor.querySelector(".monitor-empty");
        if (empty) empty.replaceWith(list);
        else monitor.insertBefore(list, monitor.querySelector(".monitor-foot"));
      }
      const current = slides()[index];
      const keep = current ? current.querySelector(".rid").textContent : null;
      list.replaceChildren(...data.entries.map(slide));
      const again = data.entries.findIndex((p) => p.id === keep);
      show(again >= 0 ? again : 0);
    } catch (e) {
      // the network may drop; the monitor keeps showing what it has and tries again later
    }
  }

  show(0);
  setInterval(() => show(index + 1), every);
  setInterval(reload, refresh);
})();
