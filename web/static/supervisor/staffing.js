// The wall's staffing panel: for each lane, agents needed now (Erlang C on the interval's forecast)
// against agents logged in, and the next intervals' requirement.  From GET /api/supervisor/staffing.

import { api, h, laneName, mount } from "../login/staff.js";
import { both } from "../shared/i18n.js";

export async function refreshStaffing(target) {
  const data = await api("/api/supervisor/staffing");
  const upcoming = (lane) => data.rows.filter((r) => r.lane === lane && r.actual_calls === null && r.required > 0).slice(0, 4);
  mount(target, Object.entries(data.now).map(([lane, now]) => {
    const short = Math.max(0, (now.required ?? 0) - now.logged_in);
    const goal = `${Math.round(now.target.level * 100)}% ≤ ${now.target.answer_s}s`;
    return h("div", { class: "lane", dataset: { staffing: lane, required: String(now.required ?? 0), loggedIn: String(now.logged_in) } },
      h("h3", {}, laneName(lane)),
      h("p", {}, both("wall.staffing_row", { required: now.required ?? 0, logged_in: now.logged_in, target: goal }),
        short ? h("span", { class: "badge care" }, ` ${both("wall.staffing_short", { n: short })}`) : ""),
      h("ul", { class: "plain" }, upcoming(lane).map((r) => h("li", {}, `${r.start.slice(11, 16)} · ${r.forecast_calls} · ${r.required}`))));
  }));
}

/** KPIs per lane (GET /api/supervisor/kpis): answered within 15 s / 25 s, abandonment, ASA, kept places, call-backs. */
export async function refreshLaneKpis(target, hours) {
  const data = await api(`/api/supervisor/kpis?hours=${hours}`);
  const pct = (x) => (x === null || x === undefined ? "–" : `${Math.round(x * 100)}%`);
  mount(target, data.lanes.map((k) => h("tr", { dataset: { kpiLane: k.lane } },
    h("td", {}, laneName(k.lane)), h("td", {}, pct(k.service_level_15s)), h("td", {}, pct(k.service_level_25s)),
    h("td", {}, `${pct(k.abandon_rate)} (${k.abandoned} + ${k.abandoned_short})`),
    h("td", {}, k.asa_s === null ? "–" : `${k.asa_s} s`),
    h("td", {}, `${k.places_returned} / ${k.places_kept}`), h("td", {}, `${k.callbacks_met} / ${k.callbacks}`))));
}
