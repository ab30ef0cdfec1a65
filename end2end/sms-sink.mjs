// A minimal Twilio-compatible Messages API on loopback for the end-to-end tests: it checks the
// basic-auth credentials, accepts POST /2010-04-01/Accounts/<sid>/Messages.json with the form
// fields To, From and Body, and writes each text as JSON to GATEHOUSE_E2E_SMS_DIR.
import http from 'node:http';
import fs from 'node:fs';
import path from 'node:path';

const port = Number(process.env.GATEHOUSE_E2E_SMS_PORT || 2626);
const dir = process.env.GATEHOUSE_E2E_SMS_DIR || path.join(import.meta.dirname, '.sms');
const sid = process.env.GATEHOUSE_E2E_SMS_SID || 'AC-e2e';
const token = process.env.GATEHOUSE_E2E_SMS_TOKEN || 'e2e-token';
fs.mkdirSync(dir, { recursive: true });
let counter = 0;

const server = http.createServer((req, res) => {
  const answer = (status, body) => {
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(JSON.stringify(body));
  };
  if (req.method === 'GET' && req.url === '/healthz') return answer(200, { ok: true });
  if (req.method !== 'POST' || req.url !== `/2010-04-01/Accounts/${sid}/Messages.json`) {
    return answer(404, { code: 20404, message: 'not found' });
  }
  const expected = 'Basic ' + Buffer.from(`${sid}:${token}`).toString('base64');
  if (req.headers.authorization !== expected) return answer(401, { code: 20003, message: 'Authenticate' });
  let body = '';
  req.on('data', (chunk) => { body += chunk; });
  req.on('end', () => {
    const form = new URLSearchParams(body);
    const text = { to: form.get('To'), from: form.get('From'), body: form.get('Body'), at: Date.now() };
    if (!text.to || !text.from || !text.body) return answer(400, { code: 21604, message: 'missing field' });
    counter += 1;
    fs.writeFileSync(path.join(dir, `${Date.now()}-${process.pid}-${counter}.json`), JSON.stringify(text));
    answer(201, { sid: `SM${counter}`, status: 'queued' });
  });
});
server.listen(port, '127.0.0.1');
