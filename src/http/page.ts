// The dashboard page served at GET / : one self-contained HTML document (no CDN: uPlot
// comes from /assets, served out of the package's node_modules). Read-only: it polls
// /api/state every few seconds and asks /api/explain for the search box. No secret is
// ever part of what it shows (the state JSON carries none). Every URL it asks is relative
// (api/state, assets/…), so it also works behind a proxy under a sub-path. With [metrics]
// token, a browser without the session cookie gets the login page instead (POST login);
// a 401 on the page's own requests (the session expired) reloads it, showing that form.

const DASHBOARD_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>reselqos</title>
<link rel="stylesheet" href="assets/uPlot.min.css">
<style>
  body { font: 14px/1.4 system-ui, sans-serif; margin: 0; background: #f6f7f9; color: #222; }
  header { background: #1f2d3d; color: #fff; padding: 10px 18px; display: flex; gap: 24px; flex-wrap: wrap; align-items: baseline; }
  header h1 { font-size: 18px; margin: 0; }
  header .ok { color: #7ee787; } header .bad { color: #ff8080; }
  main { display: grid; grid-template-columns: repeat(auto-fit, minmax(560px, 1fr)); gap: 14px; padding: 14px; }
  section { background: #fff; border: 1px solid #dde; border-radius: 6px; padding: 10px 14px; }
  h2 { font-size: 15px; margin: 0 0 8px; }
  table { border-collapse: collapse; width: 100%; }
  th, td { text-align: right; padding: 2px 8px; border-bottom: 1px solid #eee; white-space: nowrap; }
  th:first-child, td:first-child { text-align: left; }
  .muted { color: #777; }
  input { font: inherit; padding: 4px 8px; width: 260px; }
  pre { background: #f3f3f3; padding: 8px; white-space: pre-wrap; margin: 8px 0 0; }
</style>
</head>
<body>
<header>
  <h1>reselqos <span id="site"></span></h1>
  <span id="ha-box" hidden>role: <span id="ha">-</span></span>
  <span>last cycle: <span id="cycle">-</span></span>
  <span>LDAP: <span id="ldap">-</span></span>
  <span>MySQL: <span id="mysql">-</span></span>
  <span>rate rule: <span id="rule">-</span></span>
  <span id="sharing-box" hidden>sharing: <span id="sharing">-</span></span>
  <!--logout-->
</header>
<main>
  <section><h2>Download: measured throughput per group (solid) and policy rate (dashed), Mbit/s</h2><div id="chart-down"></div></section>
  <section><h2>Upload: measured throughput per group (solid) and policy rate (dashed), Mbit/s</h2><div id="chart-up"></div></section>
  <section style="grid-column: 1 / -1"><h2>Groups</h2><table id="groups"><thead><tr><th>group</th><th>threshold</th><th>users &darr;</th><th>rate &darr;</th><th>now &darr;</th><th>users &uarr;</th><th>rate &uarr;</th><th>now &uarr;</th></tr></thead><tbody></tbody></table></section>
  <section><h2>Find a user</h2>
    <form id="search"><input id="who" placeholder="uid or IP" autocomplete="off"> <button>explain</button></form>
    <pre id="explain" class="muted">volumes since the reset, groups, next threshold, rate per user</pre>
  </section>
  <section><h2>Last moves</h2><table id="moves"><thead><tr><th>uid</th><th>direction</th><th>from</th><th>to</th><th>at</th></tr></thead><tbody></tbody></table></section>
  <section><h2>Firewall</h2><table id="firewall"><tbody></tbody></table></section>
</main>
<script src="assets/uPlot.iife.min.js"></script>
<script>
'use strict';
const COLORS = ['#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd', '#8c564b', '#e377c2', '#7f7f7f', '#bcbd22', '#17becf'];
const charts = {};
window.__charts = charts;
const $ = (id) => document.getElementById(id);
const mbit = (b) => b === null || b === undefined ? null : b / 1e6;
const fmtRate = (b) => b === null || b === undefined ? '-' : b >= 1e9 ? (b / 1e9).toFixed(2) + ' Gbit/s' : b >= 1e6 ? (b / 1e6).toFixed(2) + ' Mbit/s' : (b / 1e3).toFixed(1) + ' kbit/s';
const fmtSize = (n) => n === null || n === undefined ? '-' : n >= 1e9 ? (n / 1e9).toFixed(2) + ' GB' : n >= 1e6 ? (n / 1e6).toFixed(1) + ' MB' : n + ' B';
function text(el, s) { el.textContent = s; return el; }
function row(cells, attrs) {
  const tr = document.createElement('tr');
  cells.forEach((c, i) => { const td = document.createElement('td'); td.textContent = c; if (attrs && attrs[i]) for (const [k, v] of Object.entries(attrs[i])) td.setAttribute(k, v); tr.appendChild(td); });
  return tr;
}
function chart(dir, state) {
  const pts = state.history;
  const groups = state.classes.filter((c) => c.direction === dir).length;
  const data = [pts.map((p) => p.t)];
  for (let g = 0; g < groups; g++) data.push(pts.map((p) => mbit(p[dir][g])));
  const rk = dir === 'down' ? 'rateDown' : 'rateUp';
  for (let g = 0; g < groups; g++) data.push(pts.map((p) => mbit(p[rk][g])));
  const el = $('chart-' + dir);
  el.dataset.points = String(pts.length);
  if (!charts[dir] || charts[dir].series.length !== 1 + 2 * groups) {
    if (charts[dir]) charts[dir].destroy();
    const series = [{}];
    for (let g = 0; g < groups; g++) series.push({ label: 'group ' + g, stroke: COLORS[g % COLORS.length], width: 2, spanGaps: true });
    for (let g = 0; g < groups; g++) series.push({ label: 'rate ' + g, stroke: COLORS[g % COLORS.length], dash: [6, 4], width: 1 });
    charts[dir] = new uPlot({ width: Math.max(500, el.clientWidth || 600), height: 260, series, axes: [{}, { label: 'Mbit/s' }], scales: { x: { time: true } } }, data, el);
  } else {
    charts[dir].setData(data);
  }
}
function render(s) {
  text($('site'), s.site);
  $('ha-box').hidden = !s.ha;
  if (s.ha) { const h = $('ha'); text(h, s.ha.role + ' since ' + new Date(s.ha.since).toLocaleTimeString()); h.className = s.ha.role === 'fault' ? 'bad' : 'ok'; }
  const c = $('cycle');
  text(c, s.at ? new Date(s.at).toLocaleTimeString() + (s.ok ? ' ok' : ' failed' + (s.error ? ': ' + s.error : '')) : 'none yet');
  c.className = s.ok ? 'ok' : 'bad';
  for (const k of ['ldap', 'mysql']) { const e = $(k); text(e, s.sources[k]); e.className = s.sources[k] === 'ok' ? 'ok' : 'bad'; }
  const sh = s.sharing;
  $('sharing-box').hidden = !sh;
  if (sh) {
    const mb = (x) => (x / 1e6).toFixed(1);
    const pair = (p) => (p ? mb(p.down) + '/' + mb(p.up) : '-');
    text($('sharing'), sh.mode + ', demand ' + pair(sh.demand) + ', allocation ' + pair(sh.allocation) + ' of cap ' + pair(sh.cap) + ' Mbit/s (down/up); peers: ' +
      (sh.peers.filter((p) => p.site !== sh.site).map((p) => p.site + (p.fresh ? ' ' + pair(p.allocation) : ' STALE')).join(', ') || 'none'));
    $('sharing').className = sh.mode === 'sharing' ? 'ok' : 'bad';
  }
  text($('rule'), (s.rule.current || 'none in force') + (s.rule.next ? '; next ' + s.rule.next.rule + ' at ' + new Date(s.rule.next.startsAt).toLocaleString() : ''));
  const tb = $('groups').tBodies[0];
  tb.replaceChildren();
  const byDir = (d) => s.classes.filter((x) => x.direction === d);
  const down = byDir('down'), up = byDir('up');
  for (let g = 0; g < down.length; g++) {
    const lim = s.limits[g];
    const d = down[g], u = up[g] || {};
    tb.appendChild(row(['group ' + g, lim === undefined ? '(last)' : '\\u2264 ' + fmtSize(lim), String(d.users), fmtRate(d.rateBps), fmtRate(d.bps), String(u.users), fmtRate(u.rateBps), fmtRate(u.bps)],
      [null, null, { 'data-users-down': d.users }, { 'data-rate-down': d.rateBps }, { 'data-bps-down': d.bps === null ? '' : Math.round(d.bps), 'data-group': g }, { 'data-users-up': u.users }, { 'data-rate-up': u.rateBps }, { 'data-bps-up': u.bps === null || u.bps === undefined ? '' : Math.round(u.bps), 'data-group': g }]));
  }
  const mv = $('moves').tBodies[0];
  mv.replaceChildren();
  for (const m of s.moves.slice(0, 20)) mv.appendChild(row([m.uid, m.direction, String(m.from), String(m.to), new Date(m.at).toLocaleTimeString()]));
  if (!s.moves.length) mv.appendChild(row(['no move yet']));
  const fw = $('firewall').tBodies[0];
  fw.replaceChildren();
  if (!s.firewall) fw.appendChild(row(['firewall disabled']));
  else {
    for (const [k, v] of Object.entries(s.firewall.allowed)) fw.appendChild(row(['allowed (' + k + ')', String(v)]));
    for (const [k, v] of Object.entries(s.firewall.refused)) fw.appendChild(row(['refused: ' + k, String(v)]));
  }
  chart('down', s);
  chart('up', s);
}
let delay = 2000;
async function poll() {
  try {
    const r = await fetch('api/state', { cache: 'no-store' });
    if (r.status === 401) { location.reload(); return; }
    if (r.ok) { const s = await r.json(); render(s); delay = Math.min(10000, Math.max(1000, s.intervalS * 1000)); }
  } catch (e) { text($('cycle'), 'daemon unreachable'); }
  setTimeout(poll, delay);
}
$('search').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const who = $('who').value.trim();
  if (!who) return;
  const out = $('explain');
  const r = await fetch('api/explain?who=' + encodeURIComponent(who), { cache: 'no-store' });
  if (r.status === 401) { location.reload(); return; }
  const j = await r.json();
  out.className = '';
  if (!j.ok) { text(out, j.error); delete out.dataset.uid; return; }
  const e = j.explain;
  const lines = [e.uid + ': ' + e.ips.join(', '), 'volumes since ' + new Date(e.resetAt).toLocaleString() + (e.rule ? ' (' + e.rule + ' in force)' : '')];
  for (const d of ['down', 'up']) {
    const x = e[d];
    lines.push((d === 'down' ? 'download ' : 'upload   ') + fmtSize(x.bytes).padStart(10) + '  group ' + x.group + '/' + (x.groups - 1) + '  ' +
      (x.nextThresholdBytes === null ? 'last group' : 'next group above ' + fmtSize(x.nextThresholdBytes) + ' (' + fmtSize(x.bytesToNextGroup) + ' to go)'));
    if (x.rawBytes !== undefined && x.rawBytes !== x.bytes) lines.push('          counted ' + fmtSize(x.bytes) + ' of ' + fmtSize(x.rawBytes) + ' raw (off-peak hours count less)');
    lines.push('          rate now ' + fmtRate(x.perUserRateBps) + ' per user (class ' + fmtRate(x.classRateBps) + ' shared by ' + x.usersInGroup + ')');
  }
  const t = e.timeline;
  if (t) {
    const hm = (iso) => new Date(iso).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
    lines.push('the day since ' + hm(t.since) + ' (thresholds ' + t.limits.map(fmtSize).join(', ') + '):');
    for (const ev of t.events) lines.push('  ' + hm(ev.at) + '  ' + (ev.direction === 'down' ? 'download' : 'upload') + ' group ' + ev.from + ' -> ' + ev.to + ' at ' + fmtSize(ev.bytes));
    if (t.events.length === 0) lines.push('  no group change');
    lines.push('  ' + hm(t.now.at) + '  now: download ' + fmtSize(t.now.down) + ', upload ' + fmtSize(t.now.up));
  }
  text(out, lines.join('\\n'));
  out.dataset.timeline = t ? String(t.events.length) : '';
  out.dataset.uid = e.uid;
  out.dataset.groupDown = String(e.down.group);
  out.dataset.groupUp = String(e.up.group);
});
poll();
</script>
</body>
</html>
`;

const LOGOUT = '<form id="logout" method="post" action="logout" style="margin-left:auto"><button>log out</button></form>';

/** The dashboard; with a log-out button when the browser came in with the session cookie. */
export function dashboardPage(session: boolean): string {
  return DASHBOARD_HTML.replace('<!--logout-->', session ? LOGOUT : '');
}

const esc = (s: string): string => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

/** The login form ([metrics] token set, no valid Bearer header or cookie): POSTs the token to login. */
export function loginPage(error: string | null): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>reselqos: log in</title>
<style>
  body { font: 14px/1.4 system-ui, sans-serif; margin: 0; background: #f6f7f9; color: #222; }
  header { background: #1f2d3d; color: #fff; padding: 10px 18px; }
  header h1 { font-size: 18px; margin: 0; }
  form { background: #fff; border: 1px solid #dde; border-radius: 6px; padding: 14px; margin: 24px auto; max-width: 420px; }
  input { font: inherit; padding: 4px 8px; width: 100%; box-sizing: border-box; margin: 6px 0 10px; }
  .bad { color: #c00; }
</style>
</head>
<body>
<header><h1>reselqos</h1></header>
<form id="login" method="post" action="login">
  <label for="token">[metrics] token of this gateway</label>
  <input id="token" name="token" type="password" autocomplete="current-password" required autofocus>
  ${error ? `<p id="login-error" class="bad">${esc(error)}</p>` : ''}
  <button>log in</button>
</form>
</body>
</html>
`;
}
