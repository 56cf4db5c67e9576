// Runs a report's render script (its last <script>) against stand-ins for the DOM and
// Plotly, to catch what C++ tests cannot see: a JavaScript error, a plot drawn into an element
// the page does not have, a plot div nothing draws into, a <select> that breaks its panel.
// Usage: node render_check.js report.html   (prints "ok" and exits 0, else exits 1)
'use strict';
const fs = require('fs');

const html = fs.readFileSync(process.argv[2], 'utf8');
const dataOpen = '<script type="application/json" id="normlab-data">';
const dataStart = html.indexOf(dataOpen) + dataOpen.length;
const dataText = html.slice(dataStart, html.indexOf('</script>', dataStart));
const script = html.slice(html.lastIndexOf('<script>') + '<script>'.length,
                          html.lastIndexOf('</script>'));

const ids = new Set([...html.matchAll(/ id="([^"]+)"/g)].map((m) => m[1]));
const plotDivs = [...html.matchAll(/<div class="plot" id="([^"]+)"/g)].map((m) => m[1]);
const elements = new Map();
function element(id) {
  if (!ids.has(id)) throw new Error('the page has no element #' + id);
  if (!elements.has(id)) {
    const select = html.match(new RegExp('<select id="' + id + '">(.*?)</select>'));
    elements.set(id, {
      id: id, style: {}, listeners: {}, value: '0',
      textContent: id === 'normlab-data' ? dataText : '',
      options: select ? [...select[1].matchAll(/<option value="([^"]*)"/g)].map((m) => m[1]) : [],
      addEventListener: function (type, fn) { this.listeners[type] = fn; },
    });
  }
  return elements.get(id);
}

const drawn = new Map();  // div id -> number of draws
function draw(div, traces) {
  const id = typeof div === 'string' ? div : div.id;
  element(id);
  if (!Array.isArray(traces) || traces.length === 0) throw new Error('no traces for #' + id);
  for (const t of traces) {
    if (t.z && t.y && t.z.length !== t.y.length) {
      throw new Error('#' + id + ': z has ' + t.z.length + ' rows for ' + t.y.length + ' y values');
    }
  }
  drawn.set(id, (drawn.get(id) || 0) + 1);
}
global.document = {getElementById: element};
global.Plotly = {
  newPlot: draw,
  react: draw,
  purge: function (div) { element(typeof div === 'string' ? div : div.id); },
};

try {
  eval(script);
  // Every plot div is drawn, or hidden because the selected item lacks that stage.
  for (const id of plotDivs) {
    if (!drawn.has(id) && element(id).style.display !== 'none') {
      throw new Error('nothing drew into #' + id);
    }
  }
  // Every option of every <select> redraws its panel.
  for (const [id, el] of elements) {
    for (const value of el.options) {
      const before = [...drawn.values()].reduce((a, b) => a + b, 0);
      el.value = value;
      el.listeners.change();
      const after = [...drawn.values()].reduce((a, b) => a + b, 0);
      if (after === before) throw new Error('#' + id + ' = ' + value + ' redrew nothing');
    }
  }
} catch (e) {
  console.log('render check failed: ' + e.message);
  process.exit(1);
}
console.log('ok');
