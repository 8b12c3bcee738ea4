import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import GithubSlugger from 'github-slugger';
import MarkdownIt, { type Token } from 'markdown-it';
import { ROOT } from './cli.js';

/**
 * The user documentation as its tests read it: README.md and every page under docs/, parsed with
 * markdown-it (so a fence inside a list item is found like any other), with GitHub's heading anchors.
 */
export interface DocPage {
  /** Relative to the repository, with `/`. */
  file: string;
  text: string;
  tokens: Token[];
}

export interface CodeBlock {
  file: string;
  /** 1-based line of the opening fence. */
  line: number;
  /** The fence's info string's first word: `sh`, `ts`, `json`, … */
  lang: string;
  code: string;
  /** The reason in an HTML comment just above the block (`<!-- not run: REASON -->`), if any. */
  notRun: string | undefined;
}

const markdown = new MarkdownIt({ html: true });

export function docPages(): DocPage[] {
  const pages = readdirSync(path.join(ROOT, 'docs'), { recursive: true, encoding: 'utf8' })
    .filter((file) => file.endsWith('.md'))
    .map((file) => `docs/${file.split(path.sep).join('/')}`)
    .sort();
  return ['README.md', ...pages].map(readPage);
}

/** A Markdown file of the repository, for its links: the benchmarks' README is one. */
export function readPage(file: string): DocPage {
  const text = readFileSync(path.join(ROOT, file), 'utf8');
  return { file, text, tokens: markdown.parse(text, {}) };
}

const NOT_RUN = /^<!--\s*not run:\s*(.+?)\s*-->\s*$/;

export function codeBlocks(page: DocPage): CodeBlock[] {
  const blocks: CodeBlock[] = [];
  page.tokens.forEach((token, index) => {
    if (token.type !== 'fence') return;
    const before = page.tokens[index - 1];
    const comment = before?.type === 'html_block' ? NOT_RUN.exec(before.content.trim()) : null;
    blocks.push({
      file: page.file,
      line: (token.map?.[0] ?? 0) + 1,
      lang: token.info.trim().split(/\s+/)[0] ?? '',
      code: token.content,
      notRun: comment?.[1],
    });
  });
  return blocks;
}

/** The anchors GitHub gives the page's headings. */
export function anchors(page: DocPage): Set<string> {
  const slugger = new GithubSlugger();
  const found = new Set<string>();
  page.tokens.forEach((token, index) => {
    if (token.type !== 'heading_open') return;
    const inline = page.tokens[index + 1]!;
    const text = (inline.children ?? [])
      .filter((child) => child.type === 'text' || child.type === 'code_inline')
      .map((child) => child.content)
      .join('');
    found.add(slugger.slug(text));
  });
  return found;
}

/** Every link's target, with the line it is on (the line of the block it is in). */
export function links(page: DocPage): { target: string; line: number }[] {
  const found: { target: string; line: number }[] = [];
  let line = 1;
  for (const token of page.tokens) {
    if (token.map) line = token.map[0] + 1;
    for (const child of token.children ?? []) {
      const target = child.attrGet(child.type === 'image' ? 'src' : 'href');
      if ((child.type === 'link_open' || child.type === 'image') && target) {
        found.push({ target: String(target), line });
      }
    }
  }
  return found;
}
