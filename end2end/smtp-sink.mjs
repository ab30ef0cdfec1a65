// A minimal SMTP server on loopback for the end-to-end tests: it accepts every message and
// writes it as JSON to the folder named by GATEHOUSE_E2E_MAIL_DIR, where tests read codes.
import net from 'node:net';
import fs from 'node:fs';
import path from 'node:path';

const port = Number(process.env.GATEHOUSE_E2E_SMTP_PORT || 2525);
const dir = process.env.GATEHOUSE_E2E_MAIL_DIR || path.join(import.meta.dirname, '.mail');
fs.mkdirSync(dir, { recursive: true });
let counter = 0;

function decodeHeader(value) {
  // RFC 2047 encoded words, as lettre writes non-ASCII or long subjects.
  return value.replace(/=\?utf-8\?([bq])\?([^?]*)\?=/gi, (_, enc, text) =>
    enc.toLowerCase() === 'b'
      ? Buffer.from(text, 'base64').toString('utf8')
      : text.replace(/_/g, ' ').replace(/=([0-9a-f]{2})/gi, (_m, h) => String.fromCharCode(parseInt(h, 16))));
}

function decodeBody(head, body) {
  // Quoted-printable (RFC 2045 §6.7), as lettre writes bodies with long lines: soft line
  // breaks go, and =XX is the byte XX (decoded as UTF-8).
  if (!/^Content-Transfer-Encoding:\s*quoted-printable/im.test(head)) return body;
  const bytes = [];
  const text = body.replace(/=\r\n/g, '');
  for (let i = 0; i < text.length; i++) {
    if (text[i] === '=' && /^[0-9A-Fa-f]{2}$/.test(text.slice(i + 1, i + 3))) {
      bytes.push(parseInt(text.slice(i + 1, i + 3), 16));
      i += 2;
    } else {
      bytes.push(...Buffer.from(text[i], 'utf8'));
    }
  }
  return Buffer.from(bytes).toString('utf8');
}

const server = net.createServer((socket) => {
  let buffer = '';
  let inData = false;
  let rcpt = [];
  const reply = (line) => socket.write(line + '\r\n');
  reply('220 localhost gatehouse-e2e-sink');
  socket.on('data', (chunk) => {
    buffer += chunk.toString('utf8');
    while (true) {
      if (inData) {
        const end = buffer.indexOf('\r\n.\r\n');
        if (end < 0) return;
        const raw = buffer.slice(0, end);
        buffer = buffer.slice(end + 5);
        inData = false;
        const [head, ...rest] = raw.split('\r\n\r\n');
        const unfolded = head.replace(/\r\n[ \t]+/g, ' ');
        const subject = decodeHeader((unfolded.match(/^Subject: (.*)$/im) || [])[1] || '');
        fs.mkdirSync(dir, { recursive: true });
        const file = path.join(dir, `${Date.now()}-${process.pid}-${counter++}.json`);
        const body = decodeBody(unfolded, rest.join('\r\n\r\n'));
        fs.writeFileSync(file, JSON.stringify({ to: rcpt, subject, body, at: Date.now() }));
        rcpt = [];
        reply('250 OK queued');
        continue;
      }
      const eol = buffer.indexOf('\r\n');
      if (eol < 0) return;
      const line = buffer.slice(0, eol);
      buffer = buffer.slice(eol + 2);
      const verb = line.slice(0, 4).toUpperCase();
      if (verb === 'EHLO' || verb === 'HELO') reply('250 localhost');
      else if (verb === 'MAIL') reply('250 OK');
      else if (verb === 'RCPT') { rcpt.push((line.match(/<([^>]*)>/) || [])[1] || ''); reply('250 OK'); }
      else if (verb === 'DATA') { inData = true; reply('354 End data with <CR><LF>.<CR><LF>'); }
      else if (verb === 'QUIT') { reply('221 Bye'); socket.end(); return; }
      else if (verb === 'RSET') { rcpt = []; reply('250 OK'); }
      else if (verb === 'NOOP') reply('250 OK');
      else reply('502 Command not implemented');
    }
  });
  socket.on('error', () => {});
});
server.listen(port, '127.0.0.1', () => console.log(`smtp sink on 127.0.0.1:${port}, writing to ${dir}`));
