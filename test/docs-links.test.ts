import { existsSync } from 'node:fs';
import path from 'node:path';
import { expect } from 'chai';
import { ROOT } from './support/cli.js';
import { anchors, docPages, links, readPage } from './support/docs.js';

describe('links in the READMEs and docs/', () => {
  const pages = [...docPages(), readPage('bench/README.md')];
  const anchorsOf = new Map(pages.map((page) => [page.file, anchors(page)]));

  it('lead to files of the repository and to headings that exist', () => {
    const broken: string[] = [];
    let checked = 0;
    for (const page of pages) {
      for (const { target, line } of links(page)) {
        if (/^[a-z]+:/i.test(target)) continue; // https:, mailto:: outside the repository
        checked += 1;
        const [file = '', anchor] = target.split('#');
        const resolved = file
          ? path.posix.normalize(path.posix.join(path.posix.dirname(page.file), file))
          : page.file;
        const where = `${page.file}:${line} → ${target}`;
        if (!existsSync(path.join(ROOT, resolved))) broken.push(`${where}: no such file`);
        else if (anchor !== undefined) {
          const known = anchorsOf.get(resolved);
          if (!known) broken.push(`${where}: an anchor in a file that is not a page of the docs`);
          else if (!known.has(anchor)) broken.push(`${where}: no heading with that anchor`);
        }
      }
    }
    expect(checked).to.be.greaterThan(50);
    expect(broken).to.deep.equal([]);
  });

  it('reach every page of docs/ from the README, directly or through other pages', () => {
    const reached = new Set(['README.md']);
    const queue = ['README.md'];
    while (queue.length > 0) {
      const current = queue.shift();
      const page = pages.find((p) => p.file === current)!;
      for (const { target } of links(page)) {
        const file = target.split('#')[0];
        if (!file || /^[a-z]+:/i.test(target)) continue;
        let resolved = path.posix.normalize(path.posix.join(path.posix.dirname(page.file), file));
        if (resolved.endsWith('/')) resolved = resolved.slice(0, -1);
        const linked = pages.filter((p) => p.file === resolved || p.file.startsWith(`${resolved}/`));
        for (const next of linked) {
          if (reached.has(next.file)) continue;
          reached.add(next.file);
          queue.push(next.file);
        }
      }
    }
    expect(pages.map((p) => p.file).filter((file) => !reached.has(file))).to.deep.equal([]);
  });
});
