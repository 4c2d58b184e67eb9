/*
 * docs.js — the API reference page (/docs): fetches /openapi.json from the
 * node and renders it: operations grouped by tag with their parameters,
 * request bodies, responses, schemas and examples, a search box, and a
 * "try it" form per operation that sends the request to this node with
 * fetch() and shows the answer.
 *
 * No network beyond the node, no framework, no inline script or style (the
 * page is served with script-src 'self' and style-src 'self'): elements are
 * built with createElement/textContent only, never from HTML strings, and
 * visibility is toggled with the hidden attribute and classes.
 *
 * An operation's body is built the first time it is opened, so the page
 * stays light with every operation listed.
 */
'use strict';

(function () {
  var METHODS = ['get', 'head', 'post', 'put', 'patch', 'delete', 'options', 'trace'];
  var AUX = { head: true, options: true };
  var spec = null;
  var ops = [];           // {id, path, method, op, item, tag, text, el, tocEl}
  var sections = [];      // {tag, el, tocEl, ops}

  // ---- DOM helpers --------------------------------------------------------------------------

  /* el('div', {class: 'x', id: 'y'}, child, 'text', ...): children may be
   * nodes, strings (text) or arrays; null/undefined are skipped. */
  function el(tag, attrs) {
    var node = document.createElement(tag);
    if (attrs) {
      Object.keys(attrs).forEach(function (k) {
        var v = attrs[k];
        if (v === null || v === undefined || v === false) return;
        if (k === 'text') node.textContent = v;
        else if (k === 'class') node.className = v;
        else if (k === 'hidden') node.hidden = true;
        else node.setAttribute(k, v === true ? '' : String(v));
      });
    }
    for (var i = 2; i < arguments.length; i++) append(node, arguments[i]);
    return node;
  }

  function append(node, child) {
    if (child === null || child === undefined || child === false) return;
    if (Array.isArray(child)) { child.forEach(function (c) { append(node, c); }); return; }
    node.appendChild(typeof child === 'string' || typeof child === 'number' ? document.createTextNode(String(child)) : child);
  }

  function code(text) { return el('code', null, String(text)); }

  function pre(text, label) {
    var p = el('pre', { class: 'code', tabindex: '0', 'aria-label': label || null }, el('code', null, text));
    return p;
  }

  function tableWrap(label, table) {
    return el('div', { class: 'table-wrap', role: 'region', 'aria-label': label, tabindex: '0' }, table);
  }

  function json(value) { return JSON.stringify(value, null, 2); }

  // ---- a tiny, safe Markdown subset: paragraphs, "- " lists, `code`, **bold**, [text](link) ----

  function inline(text) {
    var frag = document.createDocumentFragment();
    var re = /`([^`]+)`|\*\*([^*]+)\*\*|\[([^\]]+)\]\(([^)\s]+)\)/g;
    var last = 0, m;
    while ((m = re.exec(text)) !== null) {
      if (m.index > last) frag.appendChild(document.createTextNode(text.slice(last, m.index)));
      if (m[1] !== undefined) frag.appendChild(code(m[1]));
      else if (m[2] !== undefined) frag.appendChild(el('strong', null, m[2]));
      else if (/^(\/(?!\/)|#)/.test(m[4])) frag.appendChild(el('a', { href: m[4] }, m[3]));
      else frag.appendChild(document.createTextNode(m[3] + ' (' + m[4] + ')'));
      last = re.lastIndex;
    }
    if (last < text.length) frag.appendChild(document.createTextNode(text.slice(last)));
    return frag;
  }

  function markdown(text, cls) {
    var box = el('div', { class: 'md' + (cls ? ' ' + cls : '') });
    if (!text) return box;
    var list = null, para = [];
    function flush() {
      if (para.length) { box.appendChild(el('p', null, inline(para.join(' ')))); para = []; }
    }
    text.split('\n').forEach(function (line) {
      var item = /^\s*[-*] (.*)$/.exec(line);
      if (item) {
        flush();
        if (!list) { list = el('ul'); box.appendChild(list); }
        list.appendChild(el('li', null, inline(item[1])));
      } else if (!line.trim()) {
        flush();
        list = null;
      } else {
        list = null;
        para.push(line.trim());
      }
    });
    flush();
    return box;
  }

  // ---- the document -------------------------------------------------------------------------

  function refName(ref) { return ref.split('/').pop(); }

  function resolve(node) {
    var guard = 0;
    while (node && typeof node.$ref === 'string' && node.$ref.indexOf('#/') === 0 && guard++ < 10) {
      var target = spec;
      node.$ref.slice(2).split('/').forEach(function (part) {
        part = part.replace(/~1/g, '/').replace(/~0/g, '~');
        target = target ? target[part] : undefined;
      });
      if (!target) break;
      var onlyRef = Object.keys(node).length === 1;
      if (!onlyRef) return node;       // a schema with siblings: rendered as is
      node = target;
    }
    return node;
  }

  function opAnchor(o) { return 'op-' + o.id; }

  function errorCodesOf(schema, out) {
    if (!schema || typeof schema !== 'object') return out;
    var code = schema.properties && schema.properties.error && schema.properties.error.properties &&
      schema.properties.error.properties.code;
    if (code && code.enum) code.enum.forEach(function (c) { out.push(c); });
    if (code && code.const) out.push(code.const);
    return out;
  }

  function responseCodes(o) {
    var codes = [];
    Object.keys(o.op.responses || {}).forEach(function (status) {
      var r = resolve(o.op.responses[status]);
      codes.push(status);
      Object.keys((r && r.content) || {}).forEach(function (mt) { errorCodesOf(r.content[mt].schema, codes); });
    });
    return codes;
  }

  // ---- schemas ------------------------------------------------------------------------------

  function schemaLink(ref) {
    var name = refName(ref);
    return el('a', { href: '#schema-' + name, class: 'schema-link' }, name);
  }

  function constraints(s) {
    var parts = [];
    if (s.format !== undefined) parts.push(s.format);
    if (s.minimum !== undefined) parts.push('≥ ' + s.minimum);
    if (s.maximum !== undefined) parts.push('≤ ' + s.maximum);
    if (s.minLength !== undefined) parts.push('length ≥ ' + s.minLength);
    if (s.maxLength !== undefined) parts.push('length ≤ ' + s.maxLength);
    if (s.maxItems !== undefined) parts.push('at most ' + s.maxItems + ' items');
    if (s.maxProperties !== undefined) parts.push('at most ' + s.maxProperties + ' members');
    if (s.pattern !== undefined) parts.push('pattern ' + s.pattern);
    if (s.default !== undefined) parts.push('default ' + JSON.stringify(s.default));
    if (s.not && s.not.const !== undefined) parts.push('not ' + JSON.stringify(s.not.const));
    return parts;
  }

  /* A one-line description of a schema's type, as nodes. */
  function typeLine(s) {
    var out = [];
    if (s === true || s === undefined || s === null) return ['any JSON'];
    if (s.$ref) out.push(schemaLink(s.$ref));
    if (s.const !== undefined) out.push(code(JSON.stringify(s.const)));
    else if (s.enum) {
      out.push('one of ');
      s.enum.forEach(function (v, i) { if (i) out.push(', '); out.push(code(JSON.stringify(v))); });
    } else if (s.type) {
      var types = Array.isArray(s.type) ? s.type : [s.type];
      types.forEach(function (t, i) {
        if (i) out.push(' | ');
        if (t === 'array') { out.push('array of '); append2(out, typeLine(s.items || true)); }
        else out.push(t);
      });
    } else if (s.allOf || s.oneOf || s.anyOf) {
      var kind = s.allOf ? 'allOf' : s.oneOf ? 'oneOf' : 'anyOf';
      out.push({ allOf: 'all of ', oneOf: 'one of ', anyOf: 'any of ' }[kind]);
      s[kind].forEach(function (sub, i) { if (i) out.push(', '); append2(out, typeLine(sub)); });
    } else if (!s.$ref && !s.properties) {
      out.push('any JSON');
    } else if (!s.$ref) {
      out.push('object');
    }
    var c = constraints(s);
    if (c.length) out.push(el('span', { class: 'constraint' }, ' (' + c.join(', ') + ')'));
    return out;
  }

  function append2(list, more) { more.forEach(function (m) { list.push(m); }); }

  /* The members of an object schema as a nested list; depth-limited. */
  function schemaTree(s, depth) {
    var box = el('div', { class: 'schema' });
    if (!s || typeof s !== 'object') { box.appendChild(el('p', null, 'Any JSON value.')); return box; }
    box.appendChild(el('p', { class: 'schema-type' }, typeLine(s)));
    if (s.description && depth === 0) box.appendChild(markdown(s.description, 'schema-desc'));
    var members = memberList(s, depth);
    if (members) box.appendChild(members);
    return box;
  }

  function memberList(s, depth) {
    if (depth > 4 || !s || typeof s !== 'object') return null;
    var kind = s.oneOf ? 'oneOf' : s.anyOf ? 'anyOf' : null;
    if (kind && !s.properties) {
      /* alternatives: each with its own members */
      return el('ul', { class: 'members' }, s[kind].map(function (sub, i) {
        return el('li', null, el('em', null, (kind === 'oneOf' ? 'exactly one of: ' : 'any of: ') + 'option ' + (i + 1) + ' '),
          el('span', { class: 'type' }, typeLine(sub)), memberList(sub, depth + 1));
      }));
    }
    var target = s.type === 'array' && s.items && s.items.properties ? s.items : s;
    var props = target.properties;
    var extra = target.additionalProperties;
    if (!props && !(extra && typeof extra === 'object')) return null;
    var required = target.required || [];
    var ul = el('ul', { class: 'members' });
    Object.keys(props || {}).forEach(function (name) {
      var p = props[name] === true ? {} : props[name];
      var li = el('li', null,
        code(name), ' ',
        el('span', { class: 'type' }, typeLine(p)),
        required.indexOf(name) >= 0 ? el('span', { class: 'req' }, ' required') : null);
      if (p.description) li.appendChild(markdown(p.description, 'member-desc'));
      var nested = memberList(p, depth + 1);
      if (nested) li.appendChild(nested);
      ul.appendChild(li);
    });
    if (extra && typeof extra === 'object') {
      ul.appendChild(el('li', null, el('em', null, 'other members'), ' ', el('span', { class: 'type' }, typeLine(extra))));
    }
    return ul;
  }

  function examplesOf(mt) {
    var list = [];
    if (!mt) return list;
    if (mt.example !== undefined) list.push({ name: 'example', value: mt.example });
    Object.keys(mt.examples || {}).forEach(function (k) {
      var ex = resolve(mt.examples[k]);
      list.push({ name: ex.summary || k, value: ex.value });
    });
    return list;
  }

  function renderExamples(list, what) {
    return list.map(function (ex) {
      var text = typeof ex.value === 'string' ? ex.value : json(ex.value);
      return el('div', { class: 'example' }, el('p', { class: 'example-name' }, 'Example: ' + ex.name),
        pre(text, what + ' example ' + ex.name));
    });
  }

  function renderContent(content, what) {
    var box = el('div', { class: 'content' });
    Object.keys(content || {}).forEach(function (mt) {
      var media = content[mt];
      box.appendChild(el('p', { class: 'media' }, 'Content-Type: ', code(mt)));
      if (media.schema) box.appendChild(schemaTree(media.schema, 1));
      append(box, renderExamples(examplesOf(media), what));
    });
    return box;
  }

  // ---- operations -----------------------------------------------------------------------------

  function paramsOf(o) {
    var list = (o.item.parameters || []).concat(o.op.parameters || []).map(resolve);
    var seen = {};
    return list.filter(function (p) {
      var k = p.in + ':' + p.name;
      if (seen[k]) return false;
      seen[k] = true;
      return true;
    });
  }

  function renderParameters(params) {
    if (!params.length) return null;
    var tbody = el('tbody');
    params.forEach(function (p) {
      tbody.appendChild(el('tr', null,
        el('th', { scope: 'row' }, code(p.name)),
        el('td', { 'data-label': 'In' }, p.in),
        el('td', { 'data-label': 'Type' }, typeLine(p.schema || {})),
        el('td', { 'data-label': 'Required' }, p.required ? 'yes' : 'no'),
        el('td', { 'data-label': 'Description' }, markdown(p.description || ''),
           p.example !== undefined ? el('p', { class: 'example-inline' }, 'Example: ', code(typeof p.example === 'string' ? p.example : JSON.stringify(p.example))) : null)));
    });
    var table = el('table', { class: 'params' },
      el('caption', { class: 'visually-hidden' }, 'Parameters'),
      el('thead', null, el('tr', null, ['Name', 'In', 'Type', 'Required', 'Description'].map(function (h) {
        return el('th', { scope: 'col' }, h);
      }))), tbody);
    return el('section', { class: 'block' }, el('h4', null, 'Parameters'), tableWrap('Parameters', table));
  }

  function statusClass(status) {
    var c = String(status).charAt(0);
    return 'status status-' + (/[1-5]/.test(c) ? c + 'xx' : 'default');
  }

  function renderHeaders(headers) {
    var names = Object.keys(headers || {});
    if (!names.length) return null;
    return el('div', { class: 'resp-headers' }, el('p', { class: 'media' }, 'Headers:'),
      el('ul', { class: 'members' }, names.map(function (name) {
        var h = resolve(headers[name]);
        return el('li', null, code(name), ' ', el('span', { class: 'type' }, typeLine(h.schema || {})),
          h.description ? markdown(h.description, 'member-desc') : null);
      })));
  }

  function renderResponse(status, resp, label) {
    var r = resolve(resp);
    return el('div', { class: 'response' },
      el('h5', null, el('span', { class: statusClass(status) }, status === 'default' ? 'other' : status), ' ',
         label || ''),
      markdown(r.description || ''),
      renderHeaders(r.headers),
      r.content ? renderContent(r.content, 'Response ' + status) : null);
  }

  function renderResponses(o) {
    var box = el('section', { class: 'block' }, el('h4', null, 'Responses'));
    var statuses = Object.keys(o.op.responses || {}).sort(function (a, b) {
      return (a === 'default') - (b === 'default') || a.localeCompare(b);
    });
    statuses.forEach(function (st) { box.appendChild(renderResponse(st, o.op.responses[st])); });
    return box;
  }

  function renderBody(o) {
    if (!o.op.requestBody) return null;
    var rb = resolve(o.op.requestBody);
    return el('section', { class: 'block' },
      el('h4', null, 'Request body', rb.required ? '' : ' (optional)'),
      markdown(rb.description || ''),
      renderContent(rb.content, 'Request body'));
  }

  /* A path with line-break opportunities after its slashes (no mid-word breaks). */
  function pathText(path) {
    var frag = document.createDocumentFragment();
    path.split('/').forEach(function (part, i) {
      if (i > 1) frag.appendChild(el('wbr'));
      frag.appendChild(document.createTextNode((i ? '/' : '') + part));
    });
    return frag;
  }

  function methodBadge(method) {
    return el('span', { class: 'method method-' + method }, method.toUpperCase());
  }

  function renderOperationBody(o) {
    var body = el('div', { class: 'op-body' });
    if (o.op.description) body.appendChild(markdown(o.op.description));
    if (o.item.description && o.method !== 'options') body.appendChild(markdown(o.item.description, 'path-desc'));
    append(body, renderParameters(paramsOf(o)));
    append(body, renderBody(o));
    body.appendChild(renderResponses(o));
    body.appendChild(renderTryIt(o));
    return body;
  }

  // ---- try it ---------------------------------------------------------------------------------

  var formCount = 0;

  function exampleText(value) {
    if (value === undefined) return '';
    if (value !== null && typeof value === 'object') {
      return Object.keys(value).map(function (k) { return k + '=' + value[k]; }).join('&');
    }
    return String(value);
  }

  function renderTryIt(o) {
    var n = ++formCount;
    var params = paramsOf(o);
    var fields = [];
    var form = el('form', { class: 'tryit', novalidate: true });
    form.appendChild(el('h4', null, 'Try it'));
    var writes = o.method === 'put' || o.method === 'post' || o.method === 'delete' || o.path === '/delete';
    form.appendChild(el('p', { class: 'hint' }, writes
      ? 'Sends a real request to this node: it changes the node\'s data.'
      : 'Sends the request to this node and shows its answer.'));
    params.forEach(function (p, i) {
      var id = 'f' + n + '-' + i;
      var ex = p.example !== undefined ? p.example : (p.schema && p.schema.default);
      var input = el('input', {
        id: id, type: 'text', autocomplete: 'off', spellcheck: 'false',
        required: p.required ? true : null,
        placeholder: ex !== undefined ? exampleText(ex) : null,
        'aria-describedby': id + '-d',
      });
      if (p.required && ex !== undefined) input.value = exampleText(ex);
      var explain = p.in + (p.required ? ', required' : '') +
        (p.style === 'form' && p.explode ? ' — name=value pairs joined by &' : '');
      form.appendChild(el('div', { class: 'field' },
        el('label', { for: id }, p.name), el('span', { id: id + '-d', class: 'hint' }, explain), input));
      fields.push({ p: p, input: input });
    });
    var bodyInput = null, typeSelect = null;
    if (o.op.requestBody) {
      var rb = resolve(o.op.requestBody);
      var types = Object.keys(rb.content || {});
      var first = examplesOf(rb.content[types[0]])[0];
      var idb = 'f' + n + '-body', idt = 'f' + n + '-type';
      typeSelect = el('select', { id: idt }, types.map(function (t) { return el('option', { value: t }, t); }));
      bodyInput = el('textarea', { id: idb, rows: '6', spellcheck: 'false' });
      if (first) bodyInput.value = typeof first.value === 'string' ? first.value : json(first.value);
      form.appendChild(el('div', { class: 'field' }, el('label', { for: idt }, 'Content-Type'), typeSelect));
      form.appendChild(el('div', { class: 'field' }, el('label', { for: idb }, 'Body'), bodyInput));
    }
    var button = el('button', { type: 'submit' }, 'Send ' + o.method.toUpperCase());
    form.appendChild(el('div', { class: 'actions' }, button));
    var curlBox = el('div', { class: 'curl' });
    var status = el('p', { class: 'result-status', role: 'status', 'aria-live': 'polite' });
    var result = el('div', { class: 'result', hidden: true });
    form.appendChild(curlBox);
    form.appendChild(status);
    form.appendChild(result);

    function build() {
      var path = o.path, query = [], headers = {}, missing = [];
      fields.forEach(function (f) {
        var v = f.input.value;
        if (v === '') {
          if (f.p.required) missing.push(f.p.name);
          return;
        }
        if (f.p.in === 'path') {
          var enc = f.p['x-shardkv-slashes'] ? encodeURI(v) : encodeURIComponent(v);
          path = path.split('{' + f.p.name + '}').join(enc);
        } else if (f.p.in === 'query') {
          if (f.p.style === 'form' && f.p.explode && f.p.schema && f.p.schema.type === 'object') {
            v.split('&').forEach(function (pair) {
              if (!pair) return;
              var eq = pair.indexOf('=');
              var k = eq < 0 ? pair : pair.slice(0, eq), val = eq < 0 ? '' : pair.slice(eq + 1);
              query.push(encodeURIComponent(k) + '=' + encodeURIComponent(val));
            });
          } else {
            query.push(encodeURIComponent(f.p.name) + '=' + encodeURIComponent(v));
          }
        } else if (f.p.in === 'header') {
          headers[f.p.name] = v;
        }
      });
      var url = path + (query.length ? '?' + query.join('&') : '');
      var body = null;
      if (bodyInput && o.method !== 'get' && o.method !== 'head') {
        body = bodyInput.value;
        if (body !== '') headers['Content-Type'] = typeSelect.value;
      }
      return { url: url, headers: headers, body: body, missing: missing };
    }

    function shellQuote(s) { return "'" + String(s).replace(/'/g, "'\\''") + "'"; }

    function showCurl() {
      var req = build();
      var parts = ['curl -i'];
      if (o.method === 'head') parts.push('-I');
      else if (o.method !== 'get') parts.push('-X ' + o.method.toUpperCase());
      parts.push(shellQuote(location.origin + req.url));
      Object.keys(req.headers).forEach(function (h) { parts.push('-H ' + shellQuote(h + ': ' + req.headers[h])); });
      if (req.body) parts.push('--data-binary ' + shellQuote(req.body));
      curlBox.textContent = '';
      curlBox.appendChild(el('p', { class: 'media' }, 'As curl:'));
      curlBox.appendChild(pre(parts.join(' '), 'curl command'));
    }

    form.addEventListener('input', showCurl);
    form.addEventListener('change', showCurl);
    showCurl();

    form.addEventListener('submit', function (ev) {
      ev.preventDefault();
      var req = build();
      if (req.missing.length) {
        status.textContent = 'Fill in: ' + req.missing.join(', ') + '.';
        return;
      }
      button.disabled = true;
      status.textContent = 'Sending ' + o.method.toUpperCase() + ' ' + req.url + '…';
      var started = performance.now();
      var init = { method: o.method.toUpperCase(), headers: req.headers, cache: 'no-store', redirect: 'manual' };
      if (req.body !== null && req.body !== '') init.body = req.body;
      fetch(req.url, init).then(function (resp) {
        return resp.text().then(function (text) {
          var ms = Math.round(performance.now() - started);
          status.textContent = 'Answer: ' + resp.status + ' ' + resp.statusText + ' in ' + ms + ' ms.';
          var lines = [];
          resp.headers.forEach(function (v, k) { lines.push(k + ': ' + v); });
          var shown = text;
          var ct = resp.headers.get('Content-Type') || '';
          /* Re-indent JSON, unless it holds integers JavaScript cannot represent exactly. */
          if (ct.indexOf('json') >= 0 && text && !/\d{16,}/.test(text)) {
            try { shown = json(JSON.parse(text)); } catch (e) { shown = text; }
          }
          result.textContent = '';
          result.appendChild(el('p', { class: 'media' },
            el('span', { class: statusClass(resp.status) }, String(resp.status)), ' ', resp.statusText));
          result.appendChild(pre(lines.join('\n'), 'Response headers'));
          if (o.method !== 'head') result.appendChild(pre(shown === '' ? '(empty body)' : shown, 'Response body'));
          result.hidden = false;
        });
      }).catch(function (err) {
        status.textContent = 'The request failed: ' + err.message;
        result.hidden = true;
      }).then(function () { button.disabled = false; });
    });
    return form;
  }

  // ---- page -----------------------------------------------------------------------------------

  function renderOperation(o) {
    var details = el('details', { class: 'op', id: opAnchor(o) });
    var summary = el('summary', null,
      el('span', { class: 'op-line' }, methodBadge(o.method), ' ', el('code', { class: 'op-path' }, pathText(o.path))),
      el('span', { class: 'op-summary' }, o.op.summary || ''));
    details.appendChild(summary);
    var built = false;
    details.addEventListener('toggle', function () {
      if (details.open && !built) {
        built = true;
        details.appendChild(renderOperationBody(o));
      }
    });
    return details;
  }

  function renderIntro() {
    var intro = document.getElementById('intro');
    var info = spec.info || {};
    document.getElementById('doc-title').textContent = info.title || 'API reference';
    document.title = (info.title || 'API') + ' — reference';
    document.getElementById('doc-version').textContent = 'Version ' + (info.version || '?') + ' · OpenAPI ' + spec.openapi;
    if (info.summary) intro.appendChild(el('p', { class: 'lead' }, info.summary));
    intro.appendChild(markdown(info.description || ''));
    var common = spec['x-shardkv-common-responses'];
    if (common) {
      var d = el('details', { class: 'common', id: 'common-responses' },
        el('summary', null, el('span', { class: 'op-summary' }, 'Responses any route can give (connection level, methods)')));
      Object.keys(common).sort().forEach(function (st) { d.appendChild(renderResponse(st, common[st])); });
      intro.appendChild(d);
    }
  }

  function renderAll() {
    renderIntro();
    var byTag = {};
    var tagOrder = (spec.tags || []).map(function (t) { return t.name; });
    Object.keys(spec.paths || {}).forEach(function (path) {
      var item = spec.paths[path];
      METHODS.forEach(function (method) {
        var op = item[method];
        if (!op) return;
        var tag = (op.tags && op.tags[0]) || 'other';
        if (tagOrder.indexOf(tag) < 0) tagOrder.push(tag);
        var o = { id: op.operationId || (method + path).replace(/[^A-Za-z0-9]+/g, '-'), path: path, method: method,
                  op: op, item: item, tag: tag };
        o.text = [method, path, op.summary, op.description, op.operationId, tag, item.summary]
          .concat(responseCodes(o)).join(' ').toLowerCase();
        ops.push(o);
        (byTag[tag] = byTag[tag] || []).push(o);
      });
    });
    var opsBox = document.getElementById('ops');
    var toc = document.getElementById('toc');
    tagOrder.forEach(function (tag) {
      var list = byTag[tag];
      if (!list) return;
      var tagInfo = (spec.tags || []).filter(function (t) { return t.name === tag; })[0] || {};
      var title = tagInfo['x-displayName'] || tag;
      var section = el('section', { class: 'tag', id: 'tag-' + tag, 'aria-labelledby': 'tag-h-' + tag },
        el('h2', { id: 'tag-h-' + tag }, title), markdown(tagInfo.description || ''));
      var tocList = el('ul');
      var tocEl = el('div', { class: 'toc-tag' }, el('a', { href: '#tag-' + tag, class: 'toc-h' }, title), tocList);
      list.forEach(function (o) {
        o.el = renderOperation(o);
        section.appendChild(o.el);
        o.tocEl = el('li', null, el('a', { href: '#' + opAnchor(o) }, methodBadge(o.method), ' ', el('span', { class: 'toc-path' }, pathText(o.path))));
        tocList.appendChild(o.tocEl);
      });
      opsBox.appendChild(section);
      toc.appendChild(tocEl);
      sections.push({ tag: tag, el: section, tocEl: tocEl, ops: list });
    });
    renderSchemas();
  }

  function renderSchemas() {
    var box = document.getElementById('schemas');
    var schemas = (spec.components && spec.components.schemas) || {};
    var section = el('section', { class: 'tag', id: 'tag-schemas', 'aria-labelledby': 'tag-h-schemas' },
      el('h2', { id: 'tag-h-schemas' }, 'Schemas'),
      el('p', null, 'The shapes of request and response bodies (JSON Schema 2020-12).'));
    Object.keys(schemas).forEach(function (name) {
      var s = schemas[name];
      var d = el('details', { class: 'op schema-def', id: 'schema-' + name },
        el('summary', null, el('code', { class: 'op-path' }, name),
           el('span', { class: 'op-summary' }, s.description ? s.description.split('. ')[0].replace(/\.$/, '') : '')));
      var built = false;
      d.addEventListener('toggle', function () {
        if (d.open && !built) {
          built = true;
          var body = el('div', { class: 'op-body' }, schemaTree(s, 0));
          append(body, renderExamples((s.examples || []).map(function (v, i) { return { name: (s.examples.length > 1 ? String(i + 1) : 'value'), value: v }; }), name));
          d.appendChild(body);
        }
      });
      section.appendChild(d);
    });
    box.appendChild(section);
    var tocEl = el('div', { class: 'toc-tag' }, el('a', { href: '#tag-schemas', class: 'toc-h' }, 'Schemas'));
    document.getElementById('toc').appendChild(tocEl);
  }

  // ---- search and navigation ----------------------------------------------------------------

  function applyFilter() {
    var q = document.getElementById('search').value.trim().toLowerCase();
    var words = q ? q.split(/\s+/) : [];
    var showAux = document.getElementById('show-aux').checked;
    var shown = 0, total = 0;
    ops.forEach(function (o) {
      var aux = AUX[o.method] && !showAux;
      var match = !aux && words.every(function (w) { return o.text.indexOf(w) >= 0; });
      if (!AUX[o.method] || showAux) total++;
      o.el.hidden = !match;
      o.tocEl.hidden = !match;
      if (match) shown++;
    });
    sections.forEach(function (s) {
      var any = s.ops.some(function (o) { return !o.el.hidden; });
      s.el.hidden = !any;
      s.tocEl.hidden = !any;
    });
    document.getElementById('search-status').textContent = words.length
      ? shown + ' of ' + total + ' operations match.' : total + ' operations.';
  }

  /* Opens the target of the location hash (and the details around it). */
  function openHash() {
    var id;
    try { id = decodeURIComponent(location.hash.slice(1)); } catch (e) { return; } /* e.g. "#%E0" */
    if (!id) return;
    var target = document.getElementById(id);
    if (!target) return;
    for (var n = target; n; n = n.parentElement) {
      if (n.tagName === 'DETAILS') n.open = true;
      if (n.hidden) n.hidden = false;
    }
    var focusable = target.tagName === 'DETAILS' ? target.querySelector('summary') : target;
    if (focusable) {
      if (!focusable.hasAttribute('tabindex') && focusable.tagName !== 'SUMMARY') focusable.setAttribute('tabindex', '-1');
      focusable.focus();
      focusable.scrollIntoView({ block: 'start' });
    }
  }

  function wire() {
    var search = document.getElementById('search');
    search.addEventListener('input', applyFilter);
    search.addEventListener('keydown', function (ev) {
      if (ev.key === 'Escape') { search.value = ''; applyFilter(); }
    });
    document.getElementById('search-form').addEventListener('submit', function (ev) {
      ev.preventDefault();
      var first = ops.filter(function (o) { return !o.el.hidden; })[0];
      if (first) location.hash = '#' + opAnchor(first);
    });
    document.getElementById('show-aux').addEventListener('change', applyFilter);
    document.addEventListener('keydown', function (ev) {
      var t = ev.target;
      var typing = t && (t.tagName === 'INPUT' || t.tagName === 'TEXTAREA' || t.tagName === 'SELECT' || t.isContentEditable);
      if (ev.key === '/' && !typing && !ev.ctrlKey && !ev.metaKey && !ev.altKey) {
        ev.preventDefault();
        search.focus();
      }
    });
    window.addEventListener('hashchange', openHash);
    if (window.matchMedia && window.matchMedia('(max-width: 899px)').matches) {
      document.getElementById('toc-box').open = false;
    }
  }

  function start() {
    var loading = document.getElementById('loading');
    fetch('/openapi.json', { cache: 'no-cache' }).then(function (resp) {
      if (!resp.ok) throw new Error('/openapi.json answered ' + resp.status);
      return resp.json();
    }).then(function (doc) {
      spec = doc;
      renderAll();
      wire();
      applyFilter();
      loading.hidden = true;
      openHash();
    }).catch(function (err) {
      loading.textContent = 'Could not load /openapi.json: ' + err.message;
    });
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start);
  else start();
}());
