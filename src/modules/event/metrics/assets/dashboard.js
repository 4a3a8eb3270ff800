// The nvmf-ts dashboard: one frame a second over server-sent events (/events),
// charts drawn by uPlot (served by the target from its own node_modules).

const HISTORY = 120;
const times = [];
const iops = [];
const bw = [];
const p50 = [];
const p99 = [];

function fmtNum(n) {
  if (n >= 1e6) return `${(n / 1e6).toFixed(2)}M`;
  if (n >= 1e4) return `${(n / 1e3).toFixed(1)}k`;
  return n.toFixed(n < 10 && n !== 0 ? 1 : 0);
}

function fmtBytes(n) {
  const units = ['B/s', 'KB/s', 'MB/s', 'GB/s'];
  let i = 0;
  while (n >= 1000 && i < units.length - 1) {
    n /= 1000;
    i++;
  }
  return `${n.toFixed(i === 0 ? 0 : 1)} ${units[i]}`;
}

function cell(text, num) {
  const td = document.createElement('td');
  td.textContent = String(text);
  if (num) td.className = 'num';
  return td;
}

function fillTable(id, rows, emptyText) {
  const body = document.querySelector(`#${id} tbody`);
  body.replaceChildren();
  if (rows.length === 0) {
    const tr = document.createElement('tr');
    tr.className = 'empty';
    const td = cell(emptyText);
    td.colSpan = document.querySelectorAll(`#${id} thead th`).length;
    tr.append(td);
    body.append(tr);
    return;
  }
  for (const r of rows) {
    const tr = document.createElement('tr');
    for (const c of r) tr.append(c instanceof Node ? c : cell(c[0], c[1]));
    body.append(tr);
  }
}

function makeChart(id, series) {
  const el = document.getElementById(id);
  const opts = {
    width: Math.max(320, el.clientWidth || 360),
    height: 180,
    series: [{}, ...series.map((s) => ({ label: s.label, stroke: s.color, width: 2 }))],
    axes: [{}, { size: 60 }],
    scales: { x: { time: true } },
  };
  return new uPlot(opts, [[], ...series.map(() => [])], el);
}

const charts = {
  iops: makeChart('chart-iops', [{ label: 'IOPS', color: '#4c8bf5' }]),
  bw: makeChart('chart-bw', [{ label: 'MB/s', color: '#2da44e' }]),
  lat: makeChart('chart-lat', [
    { label: 'p50', color: '#bf8700' },
    { label: 'p99', color: '#cf222e' },
  ]),
};

function push(arr, v) {
  arr.push(v);
  if (arr.length > HISTORY) arr.shift();
}

function render(f) {
  let totalIops = 0;
  let totalBps = 0;
  let worst50 = 0;
  let worst99 = 0;
  const nsRows = [];
  for (const s of f.subsystems) {
    if (s.subtype === 'Discovery') continue;
    totalIops += s.iops;
    totalBps += s.bps;
    if (s.namespaces.length === 0)
      nsRows.push([
        [s.nqn],
        ['-'],
        ['-'],
        [0, true],
        [0, true],
        [0, true],
        [0, true],
        ['-', true],
        ['-', true],
        [0, true],
      ]);
    for (const n of s.namespaces) {
      worst50 = Math.max(worst50, n.p50Us);
      worst99 = Math.max(worst99, n.p99Us);
      nsRows.push([
        [s.nqn],
        [n.nsid],
        [n.bdev],
        [fmtNum(n.readIops), true],
        [fmtNum(n.writeIops), true],
        [(n.readBps / 1e6).toFixed(1), true],
        [(n.writeBps / 1e6).toFixed(1), true],
        [n.p50Us || '-', true],
        [n.p99Us || '-', true],
        [n.errors, true],
      ]);
    }
  }
  fillTable('subsystems', nsRows, 'no subsystem');
  document.getElementById('total-iops').textContent = fmtNum(totalIops);
  document.getElementById('total-bw').textContent = fmtBytes(totalBps);

  fillTable(
    'hosts',
    f.hosts.map((h) => [
      [h.hostnqn],
      [h.nqn],
      [h.cntlid, true],
      [h.peer],
      [h.queues, true],
      [h.reactors.join(', ')],
      [h.outstanding, true],
    ]),
    'no host connected',
  );
  fillTable(
    'reactors',
    f.reactors.map((r) => {
      const bar = document.createElement('td');
      const span = document.createElement('span');
      span.className = 'bar';
      span.style.width = `${Math.round(r.load * 100)}px`;
      bar.append(span);
      return [[r.lcore, true], [`${(r.load * 100).toFixed(1)} %`, true], bar, [r.threads, true]];
    }),
    'no reactor',
  );
  fillTable(
    'errors',
    f.errors
      .slice()
      .reverse()
      .map((e) => [
        [new Date(e.timeMs).toLocaleTimeString()],
        [e.hostnqn],
        [e.nqn],
        [e.cntlid, true],
        [e.qid, true],
        [e.status],
      ]),
    'no error',
  );

  push(times, f.timeMs / 1000);
  push(iops, totalIops);
  push(bw, totalBps / 1e6);
  push(p50, worst50);
  push(p99, worst99);
  charts.iops.setData([times, iops]);
  charts.bw.setData([times, bw]);
  charts.lat.setData([times, p50, p99]);
}

const status = document.getElementById('status');
const events = new EventSource('/events');
events.onopen = () => {
  status.textContent = 'live';
  status.className = 'status live';
};
events.onerror = () => {
  status.textContent = 'disconnected, retrying…';
  status.className = 'status';
};
events.onmessage = (ev) => {
  const frame = JSON.parse(ev.data);
  window.lastFrame = frame;
  render(frame);
};
