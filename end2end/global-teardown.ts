// After the whole suite: the server's log (written at debug level) must not contain any secret
// the specs typed or any code the server sent.
import fs from 'node:fs';
import path from 'node:path';
import { CANARIES, allMails, allTexts } from './tests/support';

export default async function globalTeardown() {
  // The shared server, and the second tenant that requires MFA for everyone.
  for (const dir of ['.run', '.run-strict']) checkLog(path.join(__dirname, dir));
}

function checkLog(runDir: string) {
  const logFile = path.join(runDir, 'server.log');
  if (!fs.existsSync(logFile)) throw new Error(`no server log at ${logFile}`);
  const log = fs.readFileSync(logFile, 'utf8');
  if (log.length === 0) throw new Error(`the server log ${logFile} is empty: nothing was checked`);
  const codes = [
    ...allMails().map((m) => (m.subject.match(/\b(\d{6})\b/) || [])[1]),
    ...allTexts().map((t) => (t.body.match(/\b(\d{6})\b/) || [])[1]),
  ].filter((c): c is string => !!c);
  // The applications' client secrets, and every code and token they were given.
  const issued = ['shop-secret', 'partner-secret', 'rp-tokens']
    .map((f) => path.join(runDir, f))
    .filter((f) => fs.existsSync(f))
    .flatMap((f) => fs.readFileSync(f, 'utf8').split('\n'))
    .map((t) => t.trim())
    .filter((t) => t.length >= 20);
  // Single-use links sent by email (the "this wasn't me" undo link) are secrets too.
  const links = allMails()
    .flatMap((m) => [...m.body.matchAll(/token=([A-Za-z0-9_-]{20,})/g)].map((x) => x[1]));
  const leaked = [...CANARIES, ...issued, ...links].filter((s) => log.includes(s));
  for (const code of codes) {
    if (new RegExp(`(?<![0-9A-Za-z])${code}(?![0-9A-Za-z])`).test(log)) leaked.push(`code ${code}`);
  }
  if (leaked.length > 0) throw new Error(`secrets found in ${logFile}: ${leaked.join(', ')}`);
  console.log(`${logFile} checked: ${log.length} bytes, ${CANARIES.length} passwords, ${issued.length} client secrets and tokens, ${links.length} emailed links and ${codes.length} codes absent`);
}
