import { defineConfig } from '@playwright/test';
import path from 'node:path';

const port = Number(process.env.GATEHOUSE_E2E_PORT || 3100);
const smtpPort = Number(process.env.GATEHOUSE_E2E_SMTP_PORT || 2625);
const smsPort = Number(process.env.GATEHOUSE_E2E_SMS_PORT || 2626);
const idpPort = Number(process.env.GATEHOUSE_E2E_IDP_PORT || 2627);
const rpPort = Number(process.env.GATEHOUSE_E2E_RP_PORT || 2628);
// A second tenant whose rule is "MFA for everyone", with its own application: that rule cannot be
// switched on for the shared server without changing every other spec.
const strictPort = Number(process.env.GATEHOUSE_E2E_STRICT_PORT || 3101);
const strictRpPort = Number(process.env.GATEHOUSE_E2E_STRICT_RP_PORT || 2629);
const strictRunDir = path.join(__dirname, '.run-strict');
const idpSecret = 'e2e-idp-client-secret-never-logged';
const root = path.resolve(__dirname, '..');
const runDir = path.join(__dirname, '.run');
export const mailDir = path.join(__dirname, '.mail');
export const smsDir = path.join(__dirname, '.sms');
process.env.GATEHOUSE_E2E_MAIL_DIR = mailDir;
process.env.GATEHOUSE_E2E_SMS_DIR = smsDir;
const smsSid = 'AC-e2e';
const gatehouse = process.env.GATEHOUSE_BIN || path.join(root, 'target/debug/gatehouse');
const smsToken = 'e2e-sms-token-never-logged';

export default defineConfig({
  testDir: './tests',
  fullyParallel: true,
  workers: 2,
  retries: 0,
  timeout: 60_000,
  expect: { timeout: 10_000 },
  reporter: [['list']],
  use: {
    baseURL: `http://localhost:${port}`,
    launchOptions: {
      executablePath: process.env.GATEHOUSE_E2E_CHROMIUM || '/usr/bin/chromium',
      args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--disable-background-networking',
        '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-quic'],
    },
  },
  globalTeardown: './global-teardown.ts',
  webServer: [
    {
      command: 'node rp-app.mjs',
      url: `http://127.0.0.1:${strictRpPort}/healthz`,
      env: {
        GATEHOUSE_E2E_RP_PORT: String(strictRpPort),
        GATEHOUSE_E2E_ISSUER: `http://localhost:${strictPort}`,
        GATEHOUSE_E2E_RUN_DIR: strictRunDir,
      },
      reuseExistingServer: false,
    },
    {
      command: `mkdir -p ${strictRunDir} && ${gatehouse} apps add --name 'Example Shop' --confidential `
        + `--redirect-uri http://localhost:${strictRpPort}/callback --post-logout-uri http://localhost:${strictRpPort}/signed-out `
        + `--secret-out ${path.join(strictRunDir, 'shop-secret')} > ${path.join(strictRunDir, 'apps-shop.log')} 2>&1 `
        + `&& ${gatehouse} mfa require > ${path.join(strictRunDir, 'mfa.log')} 2>&1 `
        + `&& exec ${gatehouse} serve > ${path.join(strictRunDir, 'server.log')} 2>&1`,
      url: `http://localhost:${strictPort}/healthz`,
      cwd: root,
      timeout: 60_000,
      reuseExistingServer: false,
      env: {
        GATEHOUSE_DATA_DIR: path.join(strictRunDir, `data-${Date.now()}-${process.pid}`),
        GATEHOUSE_PUBLIC_URL: `http://localhost:${strictPort}`,
        GATEHOUSE_LISTEN: `127.0.0.1:${strictPort}`,
        GATEHOUSE_SMTP_URL: `smtp://127.0.0.1:${smtpPort}`,
        GATEHOUSE_SMTP_FROM: 'Gatehouse <no-reply@localhost>',
        GATEHOUSE_TRUSTED_PROXIES: '127.0.0.1/32',
        GATEHOUSE_SITE_ROOT: path.join(root, 'target/site'),
        RUST_LOG: 'debug,hyper=info,hyper_util=info,lettre=info',
      },
    },
    {
      command: 'node smtp-sink.mjs',
      port: smtpPort,
      env: { GATEHOUSE_E2E_SMTP_PORT: String(smtpPort), GATEHOUSE_E2E_MAIL_DIR: mailDir },
      reuseExistingServer: false,
    },
    {
      command: 'node sms-sink.mjs',
      url: `http://127.0.0.1:${smsPort}/healthz`,
      env: {
        GATEHOUSE_E2E_SMS_PORT: String(smsPort),
        GATEHOUSE_E2E_SMS_DIR: smsDir,
        GATEHOUSE_E2E_SMS_SID: smsSid,
        GATEHOUSE_E2E_SMS_TOKEN: smsToken,
      },
      reuseExistingServer: false,
    },
    {
      // A real OpenID Connect provider (oidc-provider) with Gatehouse registered as a client.
      command: 'node oidc-idp.mjs',
      url: `http://127.0.0.1:${idpPort}/.well-known/openid-configuration`,
      env: {
        GATEHOUSE_E2E_IDP_PORT: String(idpPort),
        GATEHOUSE_E2E_IDP_SECRET: idpSecret,
        GATEHOUSE_E2E_IDP_REDIRECT: `http://localhost:${port}/sign-in/external/callback`,
      },
      reuseExistingServer: false,
    },
    {
      // A customer's web application using a certified OpenID Connect client library.
      command: 'node rp-app.mjs',
      url: `http://127.0.0.1:${rpPort}/healthz`,
      env: {
        GATEHOUSE_E2E_RP_PORT: String(rpPort),
        GATEHOUSE_E2E_ISSUER: `http://localhost:${port}`,
        GATEHOUSE_E2E_RUN_DIR: runDir,
      },
      reuseExistingServer: false,
    },
    {
      // The provider is configured through the command line before the server starts.
      // So are the customer's two applications (their secrets go to files the app reads).
      command: `mkdir -p ${runDir} && ${gatehouse} providers add example-id --kind oidc --name 'Example ID' `
        + `--issuer http://127.0.0.1:${idpPort} --client-id gatehouse-e2e --client-secret-env GATEHOUSE_E2E_IDP_SECRET `
        + `> ${path.join(runDir, 'providers.log')} 2>&1 `
        + `&& ${gatehouse} apps add --name 'Example Shop' --confidential `
        + `--redirect-uri http://localhost:${rpPort}/callback --post-logout-uri http://localhost:${rpPort}/signed-out `
        + `--secret-out ${path.join(runDir, 'shop-secret')} > ${path.join(runDir, 'apps-shop.log')} 2>&1 `
        + `&& ${gatehouse} apps add --name 'Partner Portal' --confidential --third-party `
        + `--redirect-uri http://localhost:${rpPort}/partner/callback --post-logout-uri http://localhost:${rpPort}/partner/signed-out `
        + `--secret-out ${path.join(runDir, 'partner-secret')} > ${path.join(runDir, 'apps-partner.log')} 2>&1 `
        + `&& ${gatehouse} create-admin --email admin.e2e@example.com --name 'Console Admin' `
        + `> ${path.join(runDir, 'admin.log')} 2>&1 `
        + `&& ${gatehouse} create-admin --email security.e2e@example.com --name 'Security Admin' `
        + `> ${path.join(runDir, 'security-admin.log')} 2>&1 `
        // Two months of generated accounts and sign-ins for the insights dashboards.
        + `&& ${gatehouse} dev generate --users 300 --sign-ins 4000 --days 60 --force `
        + `> ${path.join(runDir, 'generate.log')} 2>&1 `
        + `&& exec ${gatehouse} serve > ${path.join(runDir, 'server.log')} 2>&1`,
      url: `http://localhost:${port}/healthz`,
      cwd: root,
      timeout: 60_000,
      reuseExistingServer: false,
      env: {
        GATEHOUSE_DATA_DIR: path.join(runDir, `data-${Date.now()}-${process.pid}`),
        GATEHOUSE_PUBLIC_URL: `http://localhost:${port}`,
        GATEHOUSE_LISTEN: `127.0.0.1:${port}`,
        GATEHOUSE_SMTP_URL: `smtp://127.0.0.1:${smtpPort}`,
        GATEHOUSE_SMTP_FROM: 'Gatehouse <no-reply@localhost>',
        GATEHOUSE_TRUSTED_PROXIES: '127.0.0.1/32',
        GATEHOUSE_SMS_GATEWAY_URL: `http://127.0.0.1:${smsPort}/2010-04-01`,
        GATEHOUSE_SMS_ACCOUNT_SID: smsSid,
        GATEHOUSE_SMS_AUTH_TOKEN: smsToken,
        GATEHOUSE_SMS_FROM: '+15005550006',
        GATEHOUSE_SITE_ROOT: path.join(root, 'target/site'),
        GATEHOUSE_E2E_IDP_SECRET: idpSecret,
        RUST_LOG: 'debug,hyper=info,hyper_util=info,lettre=info',
      },
    },
  ],
});
