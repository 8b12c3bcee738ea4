import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { expect } from 'chai';
import { deliver, send } from '../src/outbound.js';
import { freePort } from './support/stub-server.js';

describe('outbound requests', () => {
  let server: Server;
  let url: string;
  before(async () => {
    server = createServer((req, res) => {
      req.resume();
      if (req.url === '/stall-body') {
        // Headers at once, then a body that never ends.
        res.writeHead(200, { 'Content-Type': 'application/json' });
        res.write('{"partial":');
      } else if (req.url === '/stall') {
        // Never answers.
      } else if (req.url === '/fail') {
        res.writeHead(500).end('{"error":"no"}');
      } else {
        res.writeHead(202, { 'Content-Type': 'application/json' }).end('{"taken":true}');
      }
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });

  it('send reads the whole answer, and its time-out covers a body that never ends', async () => {
    const answer = await send(`${url}/ok`, { method: 'POST', body: '{}', timeoutMs: 2_000 });
    expect(answer).to.include({ status: 202, text: '{"taken":true}' });
    const started = performance.now();
    const failure = await send(`${url}/stall-body`, { timeoutMs: 300 }).catch((e: Error) => e);
    expect((failure as Error).name).to.equal('TimeoutError');
    expect(performance.now() - started).to.be.below(2_000);
  });

  it('deliver says null when the hook took it, and otherwise what went wrong, never the URL', async () => {
    expect(await deliver(`${url}/ok`, { a: 1 }, 2_000)).to.equal(null);
    expect(await deliver(`${url}/fail`, { a: 1 }, 2_000)).to.equal('HTTP 500');
    expect(await deliver(`${url}/stall`, { a: 1 }, 300)).to.equal('timed out');
    expect(await deliver(`http://127.0.0.1:${await freePort()}/x`, {}, 2_000)).to.equal('ECONNREFUSED');
  });

  it('deliver counts a 2xx as taken even when its body breaks off after the status', async () => {
    expect(await deliver(`${url}/stall-body`, {}, 300)).to.equal(null);
  });
});
