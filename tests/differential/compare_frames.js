// Compares the framing of weft-proxy (first file) and llhttp (second file), as printed by
// http1_frames and llhttp_frames.js, and exits 1 on any disagreement a proxy in front of an
// llhttp upstream could be smuggled through:
//  - every message weft-proxy accepts must end exactly where llhttp ends it;
//  - after the last accepted message both must agree on what follows (more bytes wanted, a
//    tunnel, a closed connection, a body to EOF), unless weft-proxy refuses the next message:
//    a refusal answers 400 and closes, so nothing reaches the upstream;
//  - llhttp refusing what weft-proxy leaves incomplete is fine: nothing was forwarded yet.
// Where llhttp refuses a message weft-proxy accepts ("referee stricter") an llhttp upstream
// answers 400 and closes, so nothing is smuggled; it is allowed only for the llhttp errors in
// kStricter below, each a deliberate choice of weft-proxy's, and fails otherwise, so a parser
// change that starts accepting something new is looked at.
'use strict';
const fs = require('fs');
const path = require('path');

function load(file) {
  const out = new Map();
  for (const line of fs.readFileSync(file, 'utf8').split('\n')) {
    if (!line) continue;
    const tab = line.indexOf('\t');
    out.set(line.slice(0, tab), JSON.parse(line.slice(tab + 1)));
  }
  return out;
}

const kStricter = new Map([
  // llhttp knows only registered methods; any token is a method (RFC 9110 §9.1) and the method
  // changes framing only for HEAD responses and CONNECT, which weft-proxy matches exactly.
  ['HPE_INVALID_METHOD', 'any token is a method'],
  // Raw bytes >= 0x80 in a target: weft-proxy passes them (real clients send UTF-8 paths);
  // they cannot move a message boundary.
  ['HPE_INVALID_URL', 'UTF-8 in the request target'],
  // Repeated identical Content-Length values (also as a list) are one length (RFC 9110 §8.6);
  // differing values are refused by both.
  ['HPE_UNEXPECTED_CONTENT_LENGTH', 'repeated identical Content-Length'],
  ['HPE_INVALID_CONTENT_LENGTH', 'identical Content-Length list'],
]);

const [weftFile, llFile] = process.argv.slice(2);
const weft = load(weftFile);
const ll = load(llFile);
const stricter = new Map();

let failures = 0;
let agreed = 0;
let refusedByWeft = 0;
for (const [file, w] of weft) {
  const l = ll.get(file);
  const name = path.basename(path.dirname(file)) + '/' + path.basename(file);
  if (!l) {
    console.log(`MISSING ${name}: no llhttp result`);
    failures++;
    continue;
  }
  let problem = null;
  for (let i = 0; i < w.ends.length && !problem; i++) {
    if (l.ends[i] === undefined) {
      problem = l.end === 'refused' ? 'referee stricter' : 'split';
      if (problem === 'split') problem += `: weft ends message ${i} at ${w.ends[i]}, llhttp does not`;
    } else if (l.ends[i] !== w.ends[i]) {
      problem = `split: message ${i} ends at ${w.ends[i]} for weft, ${l.ends[i]} for llhttp`;
    }
  }
  if (!problem && w.end !== 'refused') {
    if (l.ends.length > w.ends.length) {
      if (w.end !== 'tunnel' && w.end !== 'closed') {
        problem = `split: llhttp ends message ${w.ends.length} at ${l.ends[w.ends.length]}, weft ` +
                  `says ${w.end}`;
      }
    } else if (w.end !== l.end && !(w.end === 'incomplete' && l.end === 'refused')) {
      problem = `split: after ${w.ends.length} messages weft says ${w.end}, llhttp ${l.end}`;
    }
  }
  if (w.end === 'refused') refusedByWeft++;
  if (!problem) {
    agreed++;
    continue;
  }
  if (problem === 'referee stricter' && kStricter.has(l.code)) {
    stricter.set(l.code, (stricter.get(l.code) || 0) + 1);
    continue;
  }
  failures++;
  console.log(`DISAGREE ${name}: ${problem}\n  weft   ${JSON.stringify(w)}\n  llhttp ${JSON.stringify(l)}`);
}
for (const [code, n] of stricter) {
  console.log(`  llhttp stricter (${kStricter.get(code)}): ${n} input(s), ${code}`);
}
console.log(`differential framing: ${weft.size} inputs, ${agreed} agree (${refusedByWeft} ` +
            `refused by weft-proxy), ${failures} disagree`);
process.exit(failures ? 1 : 0);
