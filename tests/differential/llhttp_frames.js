// Prints where llhttp (the HTTP/1 parser inside Node.js, strict mode) ends each message of each
// input file, in the format of http1_frames: "<path>\t<json>". Bytes are fed one at a time so
// the end of every message is known exactly. With --responses the first byte of a file picks
// the request method (0 GET, 1 HEAD, 2 POST, 3 CONNECT).
'use strict';
const fs = require('fs');
const { HTTPParser } = process.binding('http_parser');

const kMethods = ['GET', 'HEAD', 'POST', 'CONNECT'];
// weft-proxy's limit on a head (data-plane/http1: Limits::max_head_bytes).
const kMaxHead = 60 * 1024;

function frame(data, responses, method) {
  const parser = new HTTPParser();
  parser.initialize(responses ? HTTPParser.RESPONSE : HTTPParser.REQUEST, {}, kMaxHead);
  const out = { ends: [], end: 'incomplete' };
  let completed = false;
  let inMessage = false;
  let keepAlive = true;
  let tunnel = false;
  // Heads with many headers arrive in pieces: kOnHeaders first, the rest with headers-complete.
  let extraHeaders = [];
  parser[HTTPParser.kOnMessageBegin] = () => {
    inMessage = true;
    extraHeaders = [];
  };
  parser[HTTPParser.kOnHeaders] = (h) => { extraHeaders = extraHeaders.concat(h); };
  parser[HTTPParser.kOnHeadersComplete] =
      (major, minor, headers, m, url, status, reason, upgrade, shouldKeepAlive) => {
        keepAlive = shouldKeepAlive;
        if (!responses && upgrade) tunnel = true;
        if (responses) {
          if (status === 101 || (method === 'CONNECT' && status >= 200 && status < 300)) {
            tunnel = true;
          }
          if (method === 'HEAD') {
            // llhttp judged keep-alive before it knew the body is skipped, as if the body ran
            // to EOF; with no body the version and Connection decide (RFC 9112 §9.3).
            const all = (headers || []).concat(extraHeaders);
            let close = false;
            let keep = false;
            for (let i = 0; i + 1 < all.length; i += 2) {
              if (all[i].toLowerCase() !== 'connection') continue;
              for (const t of all[i + 1].toLowerCase().split(',')) {
                if (t.trim() === 'close') close = true;
                if (t.trim() === 'keep-alive') keep = true;
              }
            }
            keepAlive = !close && (minor === 1 ? true : keep);
            return 1;  // no body, as Node's own client says
          }
        }
        return 0;
      };
  parser[HTTPParser.kOnBody] = () => {};
  parser[HTTPParser.kOnMessageComplete] = () => { completed = true; inMessage = false; };
  parser[HTTPParser.kOnExecute] = () => {};
  for (let i = 0; i < data.length; i++) {
    const r = parser.execute(data.subarray(i, i + 1));
    if (tunnel) {
      // The head of a request that asks for a tunnel, and a response that starts one, is
      // where both parsers must agree; what follows is not HTTP.
      out.ends.push(i + 1);
      out.end = 'tunnel';
      return out;
    }
    if (r instanceof Error) {
      out.end = 'refused';
      out.code = r.code;
      out.reason = r.reason;
      return out;
    }
    if (completed) {
      completed = false;
      out.ends.push(i + 1);
      if (!keepAlive) {
        out.end = 'closed';
        return out;
      }
    }
  }
  if (inMessage && responses) {
    const r = parser.finish();
    if (!(r instanceof Error) && completed) out.end = 'until_close';
  }
  return out;
}

let responses = false;
const lines = [];
for (const arg of process.argv.slice(2)) {
  if (arg === '--responses') {
    responses = true;
    continue;
  }
  let data = fs.readFileSync(arg);
  let method = 'GET';
  if (responses) {
    if (data.length === 0) continue;
    method = kMethods[data[0] % 4];
    data = data.subarray(1);
  }
  lines.push(arg + '\t' + JSON.stringify(frame(data, responses, method)));
}
process.stdout.write(lines.join('\n') + (lines.length ? '\n' : ''));
