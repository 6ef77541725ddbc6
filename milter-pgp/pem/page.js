'use strict';
/* mailward password-encrypted message: decrypts the envelope below with
   WebCrypto (PBKDF2-SHA256, AES-256-GCM), shows the MIME message, and seals
   a reply under the same password. No network, no dependencies. */
(function () {
  const $ = (id) => document.getElementById(id);
  const T = JSON.parse($('mw-strings').textContent);
  const BEGIN = '-----BEGIN MAILWARD ' + 'PEM-----'; /* split: never found in this script by a parser */
  const END = '-----END MAILWARD ' + 'PEM-----';
  const MIN_ITER = 1000, MAX_ITER = 20000000;
  /* The page as it came, without its envelope: the reply's reply.html. */
  const shell = document.documentElement.cloneNode(true);
  shell.querySelector('#mw-pem').textContent = '\n';
  let envelope = $('mw-pem').textContent;
  let password = null;

  /* ------------------------------------------------------------ bytes */
  /* One pass, skipping anything not base64 (line breaks, padding): about
     twice as fast as atob() plus a copy loop on a large message. s is a
     string or a Uint8Array of its ASCII bytes. */
  const B64 = new Int8Array(128).fill(-1);
  for (let i = 0; i < 64; i++) B64['ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/'.charCodeAt(i)] = i;
  function b64decode(s, from = 0, to = s.length) {
    const str = typeof s === 'string', out = new Uint8Array(((to - from) >> 2) * 3 + 3);
    let o = 0, acc = 0, n = 0;
    for (let i = from; i < to; i++) {
      const c = str ? s.charCodeAt(i) : s[i];
      const v = c < 128 ? B64[c] : -1;
      if (v < 0) continue;
      acc = (acc << 6) | v;
      if (++n === 4) { out[o++] = acc >> 16; out[o++] = (acc >> 8) & 255; out[o++] = acc & 255; n = 0; acc = 0; }
    }
    if (n === 2) out[o++] = acc >> 4;
    else if (n === 3) { out[o++] = acc >> 10; out[o++] = (acc >> 2) & 255; }
    return out.subarray(0, o);
  }
  function b64encode(bytes) {
    let s = '';
    for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
    return btoa(s);
  }
  function wrap(s, n) {
    const lines = [];
    for (let i = 0; i < s.length; i += n) lines.push(s.slice(i, i + n));
    return lines.join('\r\n');
  }
  const utf8 = (s) => new TextEncoder().encode(s);
  function indexOf(h, needle, from) {
    for (let i = h.indexOf(needle[0], from); i >= 0; i = h.indexOf(needle[0], i + 1)) {
      let j = 1;
      while (j < needle.length && h[i + j] === needle[j]) j++;
      if (j === needle.length) return i;
    }
    return -1;
  }
  function decodeText(bytes, charset) {
    try { return new TextDecoder(charset || 'utf-8').decode(bytes); } catch (e) { return new TextDecoder('utf-8').decode(bytes); }
  }

  /* ------------------------------------------------------------ envelope */
  function parseEnvelope(text) {
    const b = text.indexOf(BEGIN), e = text.indexOf(END, b);
    if (b < 0 || e < 0) throw new Error('format');
    /* The headers are short: look for their end in the first 4 KB only,
       and decode the body where it lies (no copy of a large string). */
    const top = text.slice(b + BEGIN.length, Math.min(e, b + 4096)).replace(/^[ \t\r]*\n/, '');
    const sep = top.search(/\n[ \t\r]*\n/);
    if (sep < 0) throw new Error('format');
    const bodyStart = b + BEGIN.length + (Math.min(e, b + 4096) - b - BEGIN.length - top.length) + sep;
    const h = {};
    for (const line of top.slice(0, sep).split('\n')) {
      const m = /^([A-Za-z]+):[ \t]*(\S+)[ \t\r]*$/.exec(line);
      if (!m) throw new Error('format');
      h[m[1]] = m[2];
    }
    const iter = Number(h.Iterations);
    if (h.Version !== '1' || h.KDF !== 'pbkdf2-sha256' || !/^(message|reply)$/.test(h.Kind) ||
        !Number.isInteger(iter) || iter < MIN_ITER || iter > MAX_ITER) throw new Error('format');
    const salt = b64decode(h.Salt), iv = b64decode(h.IV);
    if (salt.length !== 16 || iv.length !== 12) throw new Error('format');
    return { kind: h.Kind, iter, salt, iv, ct: b64decode(text, bodyStart, e) };
  }
  const aad = (kind, iter, salt, iv) =>
    utf8('v=1;kind=' + kind + ';kdf=pbkdf2-sha256;iter=' + iter + ';salt=' + b64encode(salt) + ';iv=' + b64encode(iv));

  async function deriveKey(pw, salt, iter) {
    const base = await crypto.subtle.importKey('raw', utf8(pw.normalize('NFC')), 'PBKDF2', false, ['deriveKey']);
    return crypto.subtle.deriveKey({ name: 'PBKDF2', hash: 'SHA-256', salt, iterations: iter }, base,
      { name: 'AES-GCM', length: 256 }, false, ['encrypt', 'decrypt']);
  }
  async function open(pw, env) {
    const key = await deriveKey(pw, env.salt, env.iter);
    performance.mark('mw-key');
    const pt = await crypto.subtle.decrypt({ name: 'AES-GCM', iv: env.iv, additionalData: aad(env.kind, env.iter, env.salt, env.iv),
      tagLength: 128 }, key, env.ct);
    return new Uint8Array(pt);
  }
  async function seal(pw, kind, plain) {
    const salt = crypto.getRandomValues(new Uint8Array(16)), iv = crypto.getRandomValues(new Uint8Array(12));
    const iter = current.iter;
    const key = await deriveKey(pw, salt, iter);
    const ct = new Uint8Array(await crypto.subtle.encrypt({ name: 'AES-GCM', iv, additionalData: aad(kind, iter, salt, iv),
      tagLength: 128 }, key, plain));
    return [BEGIN, 'Version: 1', 'Kind: ' + kind, 'KDF: pbkdf2-sha256', 'Iterations: ' + iter, 'Salt: ' + b64encode(salt),
      'IV: ' + b64encode(iv), '', wrap(b64encode(ct), 76), END, ''].join('\r\n');
  }

  /* ------------------------------------------------------------ MIME */
  function parseParams(v) {
    const parts = (v || '').split(/;(?=(?:[^"]*"[^"]*")*[^"]*$)/);
    const out = { value: parts.shift().trim().toLowerCase(), params: {} };
    for (const p of parts) {
      const m = /^\s*([^=\s]+)\s*=\s*(.*?)\s*$/.exec(p);
      if (!m) continue;
      let name = m[1].toLowerCase(), val = m[2];
      if (val.startsWith('"')) val = val.slice(1, -1).replace(/\\(.)/g, '$1');
      const ext = /^([^*]+)\*(\d+)?(\*)?$/.exec(name);
      if (ext) { /* RFC 2231: name*=charset''%XX, maybe in numbered pieces */
        name = ext[1];
        if (ext[3] || (!ext[2] && ext[0].endsWith('*'))) {
          const q = /^([^']*)'[^']*'(.*)$/.exec(val);
          const cs = q ? q[1] : (out.params['_cs_' + name] || 'utf-8');
          if (q) { out.params['_cs_' + name] = cs; val = q[2]; }
          const bytes = [];
          for (let i = 0; i < val.length; i++) {
            if (val[i] === '%' && /^[0-9A-Fa-f]{2}$/.test(val.substr(i + 1, 2))) { bytes.push(parseInt(val.substr(i + 1, 2), 16)); i += 2; }
            else bytes.push(val.charCodeAt(i) & 0xff);
          }
          val = decodeText(new Uint8Array(bytes), cs);
        }
        out.params[name] = (ext[2] && ext[2] !== '0' ? (out.params[name] || '') : '') + val;
      } else if (!(name in out.params)) out.params[name] = val;
    }
    return out;
  }
  function decodeWords(s) {
    return s.replace(/(=\?[^?\s]+\?[BbQq]\?[^?\s]*\?=)\s+(?==\?)/g, '$1').replace(/=\?([^?\s]+)\?([BbQq])\?([^?\s]*)\?=/g, (all, cs, enc, t) => {
      let bytes;
      if (enc.toUpperCase() === 'B') bytes = b64decode(t);
      else bytes = qpDecode(utf8(t.replace(/_/g, ' ')));
      return decodeText(bytes, cs.replace(/\*.*$/, ''));
    });
  }
  function qpDecode(b) {
    const out = new Uint8Array(b.length);
    let o = 0;
    const hex = (c) => (c >= 48 && c <= 57) ? c - 48 : (c >= 65 && c <= 70) ? c - 55 : (c >= 97 && c <= 102) ? c - 87 : -1;
    for (let i = 0; i < b.length; i++) {
      if (b[i] !== 61) { out[o++] = b[i]; continue; }
      if (b[i + 1] === 10) { i += 1; continue; }
      if (b[i + 1] === 13 && b[i + 2] === 10) { i += 2; continue; }
      const h1 = hex(b[i + 1]), h2 = hex(b[i + 2]);
      if (h1 >= 0 && h2 >= 0) { out[o++] = h1 * 16 + h2; i += 2; } else out[o++] = 61;
    }
    return out.subarray(0, o);
  }
  function parsePart(bytes) {
    let end = -1, skip = 0;
    for (let i = bytes.indexOf(10); i >= 0; i = bytes.indexOf(10, i + 1)) {
      if (i === 0) { end = 0; skip = 1; break; }
      if (bytes[i + 1] === 10) { end = i + 1; skip = 1; break; }
      if (bytes[i + 1] === 13 && bytes[i + 2] === 10) { end = i + 1; skip = 2; break; }
    }
    if (end < 0) end = bytes.length;
    const head = decodeText(bytes.subarray(0, end), 'utf-8').replace(/\r?\n[ \t]+/g, ' ');
    const h = {};
    for (const line of head.split(/\r?\n/)) {
      const c = line.indexOf(':');
      if (c > 0) { const k = line.slice(0, c).trim().toLowerCase(); if (!(k in h)) h[k] = line.slice(c + 1).trim(); }
    }
    return { h, body: bytes.subarray(Math.min(bytes.length, end + skip)) };
  }
  function splitMultipart(body, boundary) {
    const delim = utf8('--' + boundary), parts = [];
    let pos = 0, start = -1;
    for (;;) {
      const i = indexOf(body, delim, pos);
      if (i < 0) break;
      pos = i + delim.length;
      if (i !== 0 && body[i - 1] !== 10) continue;
      if (start >= 0) {
        let e = i - 1;
        if (e > start && body[e - 1] === 13) e--;
        parts.push(body.subarray(start, Math.max(start, e)));
      }
      if (body[pos] === 45 && body[pos + 1] === 45) return parts;
      const nl = body.indexOf(10, pos);
      if (nl < 0) return parts;
      start = nl + 1;
    }
    if (start >= 0) parts.push(body.subarray(start));
    return parts;
  }
  function walk(part, out, depth) {
    const ct = parseParams(part.h['content-type'] || 'text/plain');
    const disp = parseParams(part.h['content-disposition'] || '');
    const type = ct.value || 'text/plain';
    if (type.startsWith('multipart/') && ct.params.boundary && depth < 30) {
      for (const p of splitMultipart(part.body, ct.params.boundary)) walk(parsePart(p), out, depth + 1);
      return;
    }
    const cte = (part.h['content-transfer-encoding'] || '').toLowerCase().trim();
    let data = part.body;
    if (cte === 'base64') data = b64decode(data);
    else if (cte === 'quoted-printable') data = qpDecode(data);
    const name = disp.params.filename || ct.params.name;
    const inline = disp.value !== 'attachment' && !name;
    if (inline && type === 'text/plain') out.texts.push(decodeText(data, ct.params.charset).replace(/\r\n/g, '\n'));
    else if (inline && type === 'text/html') out.htmls.push(decodeText(data, ct.params.charset));
    else out.files.push({ name: (name ? decodeWords(name) : '') || ('part-' + (out.files.length + 1) + (type === 'message/rfc822' ? '.eml' : '')), data });
  }

  /* ------------------------------------------------------------ display */
  function status(el, text, isError) {
    el.textContent = text;
    el.classList.toggle('error', !!isError);
  }
  function show(mime, kind) {
    const top = parsePart(mime), out = { texts: [], htmls: [], files: [] };
    walk(top, out, 0);
    const dl = $('mw-headers');
    for (const [k, label] of [['from', T.from], ['date', T.date], ['subject', T.subject]]) {
      if (!top.h[k]) continue;
      const div = document.createElement('div'), dt = document.createElement('dt'), dd = document.createElement('dd');
      dt.textContent = label;
      dd.textContent = decodeWords(top.h[k]);
      div.append(dt, dd);
      dl.append(div);
    }
    current.subject = top.h.subject ? decodeWords(top.h.subject) : '';
    current.messageId = top.h['message-id'] || '';
    $('mw-text').textContent = out.texts.join('\n\n');
    $('mw-text').hidden = out.texts.length === 0;
    if (out.htmls.length > 0) {
      /* No script, no same origin (sandbox); no remote content (CSP). */
      $('mw-html').srcdoc = '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; img-src data:; style-src \'unsafe-inline\'">' +
        '<base target="_blank">' + out.htmls[0];
      $('mw-html-box').hidden = false;
    }
    for (const f of out.files) {
      const li = document.createElement('li'), a = document.createElement('a');
      a.href = URL.createObjectURL(new Blob([f.data], { type: 'application/octet-stream' }));
      a.download = f.name.replace(/[\\/\0]/g, '_');
      a.textContent = f.name + ' (' + f.data.length + ' bytes)';
      li.append(a);
      $('mw-files').append(li);
    }
    $('mw-files-box').hidden = out.files.length === 0;
    $('mw-isreply').hidden = kind !== 'reply';
    $('mw-reply-form').hidden = kind === 'reply';
    $('mw-form').hidden = true;
    $('mw-message').hidden = false;
    $('mw-message').setAttribute('tabindex', '-1');
    $('mw-message').focus();
  }

  const current = { iter: 600000, subject: '', messageId: '' };
  $('mw-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const st = $('mw-status'), input = $('mw-password'), button = $('mw-open');
    if (!window.crypto || !crypto.subtle) { status(st, T.nocrypto, true); return; }
    if (input.value === '') { status(st, T.empty, true); input.focus(); return; }
    let env, mime;
    button.disabled = true;
    status(st, T.working, false);
    /* Marks for bench/milter-pgp-pem: where the time goes. */
    performance.mark('mw-start');
    try {
      env = parseEnvelope(envelope);
      performance.mark('mw-parsed');
      mime = await open(input.value, env);
      performance.mark('mw-decrypted');
    } catch (e) {
      button.disabled = false;
      input.setAttribute('aria-invalid', 'true');
      status(st, T.wrong, true);
      input.select();
      input.focus();
      return;
    }
    password = input.value;
    input.value = '';
    current.iter = env.iter;
    envelope = null;
    status(st, '', false);
    show(mime, env.kind);
    performance.mark('mw-shown');
  });

  /* ------------------------------------------------------------ reply */
  function headerWord(s) {
    return /^[\x20-\x7e]*$/.test(s) ? s : '=?UTF-8?B?' + b64encode(utf8(s)) + '?=';
  }
  async function replyMime(text, files) {
    const lines = ['MIME-Version: 1.0', 'Subject: ' + headerWord((current.subject && !/^re:/i.test(current.subject) ? 'Re: ' : '') + current.subject)];
    if (/^<[^<>\r\n]+>$/.test(current.messageId)) lines.push('In-Reply-To: ' + current.messageId);
    const textPart = ['Content-Type: text/plain; charset=utf-8', 'Content-Transfer-Encoding: base64', '', wrap(b64encode(utf8(text)), 76)];
    if (files.length === 0) return utf8(lines.concat(textPart).join('\r\n') + '\r\n');
    const boundary = 'mw-' + b64encode(crypto.getRandomValues(new Uint8Array(18))).replace(/[+/]/g, '_');
    lines.push('Content-Type: multipart/mixed; boundary="' + boundary + '"', '', '--' + boundary, ...textPart);
    for (const f of files) {
      const data = new Uint8Array(await f.arrayBuffer());
      const enc = encodeURIComponent(f.name).replace(/['()*]/g, (c) => '%' + c.charCodeAt(0).toString(16).toUpperCase());
      lines.push('--' + boundary, 'Content-Type: application/octet-stream', "Content-Disposition: attachment; filename*=utf-8''" + enc,
        'Content-Transfer-Encoding: base64', '', wrap(b64encode(data), 76));
    }
    lines.push('--' + boundary + '--', '');
    return utf8(lines.join('\r\n'));
  }
  $('mw-reply-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const st = $('mw-reply-status'), button = $('mw-reply-make');
    button.disabled = true;
    status(st, T.working, false);
    try {
      const env = await seal(password, 'reply', await replyMime($('mw-reply-text').value, Array.from($('mw-reply-files').files)));
      const page = shell.cloneNode(true);
      page.querySelector('#mw-pem').textContent = '\n' + env;
      const dl = $('mw-reply-download');
      if (dl.href) URL.revokeObjectURL(dl.href);
      dl.href = URL.createObjectURL(new Blob(['<!DOCTYPE html>\n' + page.outerHTML], { type: 'text/html' }));
      const mail = $('mw-reply-mail'), sender = $('mw-sender').textContent;
      const url = 'mailto:' + encodeURIComponent(sender).replace(/%40/g, '@') + '?subject=' + encodeURIComponent(T.replysubject) + '&body=' + encodeURIComponent(env);
      mail.hidden = url.length > 30000 || sender === '';
      if (!mail.hidden) mail.href = url;
      $('mw-reply-links').hidden = false;
      status(st, url.length > 30000 ? T.replydone + ' ' + T.replybig : T.replydone, false);
    } catch (e) {
      status(st, String(e), true);
    }
    button.disabled = false;
  });
})();
