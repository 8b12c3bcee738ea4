import { closeSync, openSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import { createLogger } from '../src/logger.js';

describe('the log for a person at a terminal', () => {
  it('is readable lines written before the call returns, with secrets redacted', () => {
    const file = path.join(os.tmpdir(), `taskgate-pretty-${process.pid}-${Date.now()}.log`);
    const fd = openSync(file, 'w');
    try {
      const logger = createLogger({ level: 'info', pretty: true, destination: fd });
      logger.info({ task: 'flushexpiredtokens_daily', secret: 'not-to-be-seen' }, 'run started');
      logger.debug('below the level');
      const text = readFileSync(file, 'utf8');
      expect(text).to.match(/^\[\d\d:\d\d:\d\d\.\d{3}\] \S*INFO\S*: \S*run started/);
      expect(text).to.include('flushexpiredtokens_daily');
      expect(text).to.not.include('not-to-be-seen');
      expect(text).to.not.include('below the level');
      expect(text.trim().startsWith('{'), 'not a JSON line').to.equal(false);
    } finally {
      closeSync(fd);
      rmSync(file, { force: true });
    }
  });
});
