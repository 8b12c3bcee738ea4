import { createHash } from 'node:crypto';

/**
 * The status page's only style sheet, inline, and the Content-Security-Policy that allows it by
 * its hash and nothing else: no script, no other style, no outside asset, forms to this origin
 * only, never in a frame. Hashed once at start-up.
 */
export const STYLE = `
:root{color-scheme:light;--fg:#1f2328;--muted:#59636e;--line:#d1d9e0;--bg:#f6f8fa;--card:#fff;
--ok:#116329;--ok-bg:#dafbe1;--bad:#a40e26;--bad-bg:#ffebe9;--run:#0550ae;--run-bg:#ddf4ff;
--warn:#7d4e00;--warn-bg:#fff8c5;--off:#424a53;--off-bg:#eaeef2}
*{box-sizing:border-box}
html{-webkit-text-size-adjust:100%}
body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;color:var(--fg);background:var(--bg)}
a{color:var(--run)}
code,pre,.mono{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,"Liberation Mono",monospace;font-size:12.5px}
header.top{display:flex;flex-wrap:wrap;align-items:center;gap:8px 16px;padding:12px 20px;background:#24292f;color:#fff}
header.top h1{margin:0;font-size:17px;font-weight:600}
header.top h1 a{color:#fff;text-decoration:none}
header.top .meta{margin:0;color:#d1d9e0;font-size:13px;flex:1 1 auto}
header.top form{margin:0}
header.top button{background:transparent;color:#fff;border-color:#8c959f}
main{max-width:1100px;margin:0 auto;padding:16px 20px 40px}
.summary{display:flex;flex-wrap:wrap;gap:8px;margin:0 0 16px;padding:0;list-style:none}
.summary li{background:var(--card);border:1px solid var(--line);border-radius:6px;padding:6px 12px}
.summary b{font-size:16px;margin-right:4px}
.task{background:var(--card);border:1px solid var(--line);border-radius:8px;padding:14px 16px;margin:0 0 16px;min-width:0}
.task-head{display:flex;flex-wrap:wrap;align-items:center;gap:6px 10px}
.task-head h2{margin:0;font-size:16px;overflow-wrap:anywhere}
.desc{margin:4px 0 10px;color:var(--muted)}
.facts{display:grid;grid-template-columns:repeat(auto-fit,minmax(200px,1fr));gap:6px 20px;margin:0 0 10px}
.facts div{min-width:0}
.facts dt{color:var(--muted);font-size:12px;text-transform:uppercase;letter-spacing:.04em}
.facts dd{margin:0;overflow-wrap:anywhere}
.badge{display:inline-block;border-radius:999px;padding:1px 9px;font-size:12px;font-weight:600;white-space:nowrap;border:1px solid transparent}
.s-ok,.s-succeeded{color:var(--ok);background:var(--ok-bg);border-color:#aceebb}
.s-failed,.s-overdue{color:var(--bad);background:var(--bad-bg);border-color:#ffcecb}
.s-running{color:var(--run);background:var(--run-bg);border-color:#b6e3ff}
.s-paused,.s-cancelled,.s-interrupted{color:var(--warn);background:var(--warn-bg);border-color:#f5e0a0}
.s-abandoned,.s-idle,.s-due{color:var(--off);background:var(--off-bg);border-color:#d1d9e0}
.s-ran{color:var(--ok);background:var(--ok-bg);border-color:#aceebb}
.s-missed{color:var(--bad);background:var(--bad-bg);border-color:#ffcecb}
.slots{display:flex;flex-wrap:wrap;gap:6px;margin:0 0 10px;padding:0;list-style:none;font-size:12px}
.slots li{display:flex;gap:4px;align-items:center}
.notice{margin:0 0 10px;padding:8px 12px;border-radius:6px;border:1px solid;overflow-wrap:anywhere}
.notice.s-overdue{border-color:#ffcecb}.notice.s-paused{border-color:#f5e0a0}
.notice.info{color:var(--fg);background:var(--run-bg);border-color:#b6e3ff}
.chart{display:flex;align-items:flex-end;gap:10px;margin:0 0 8px}
.chart svg{flex:1 1 auto;width:100%;max-width:520px;height:44px;border-bottom:1px solid var(--line)}
.chart figcaption{font-size:12px;color:var(--muted);white-space:nowrap}
.b-succeeded{fill:#2da44e}.b-failed{fill:#cf222e}.b-running{fill:#218bff}.b-other{fill:#bf8700}
table{width:100%;border-collapse:collapse;table-layout:fixed}
th,td{text-align:left;padding:5px 6px;border-top:1px solid var(--line);vertical-align:top;overflow-wrap:anywhere}
th{font-size:12px;color:var(--muted);font-weight:600;border-top:0}
.c-start{width:8.5em}.c-status{width:9.5em}.c-dur{width:6.5em}.c-act{width:6em}.c-trig{width:6em}.c-time{width:7.5em}
td.num{font-variant-numeric:tabular-nums}
.rel{display:block;font-size:12px;color:var(--muted)}
.err{color:var(--bad)}
.empty{color:var(--muted);margin:4px 0}
.controls{display:flex;flex-wrap:wrap;gap:8px;margin-top:10px;padding-top:10px;border-top:1px dashed var(--line)}
.controls form,form.inline{display:flex;flex-wrap:wrap;gap:6px;align-items:center;margin:0}
input,select,button{font:inherit;font-size:13px;border:1px solid #8c959f;border-radius:6px;padding:4px 8px;background:#fff;color:var(--fg);max-width:100%}
input[type=text],input[type=password]{min-width:0;width:16em}
button{cursor:pointer;background:#f6f8fa;font-weight:500}
button.danger{color:var(--bad);border-color:#ff8182}
button.primary{background:#1f883d;color:#fff;border-color:#1a7f37}
.login{max-width:380px;margin:60px auto;background:var(--card);border:1px solid var(--line);border-radius:8px;padding:20px}
.login h1{font-size:18px;margin:0 0 4px}.login p{color:var(--muted);margin:0 0 14px}
.login label{display:block;font-weight:600;margin-bottom:4px}
.login input{width:100%;padding:7px 9px;margin-bottom:12px}
.login button{width:100%;padding:7px}
.login .error{color:var(--bad);background:var(--bad-bg);border:1px solid #ffcecb;border-radius:6px;padding:8px 10px}
pre{background:var(--bg);border:1px solid var(--line);border-radius:6px;padding:8px;margin:0 0 10px;white-space:pre-wrap;overflow-wrap:anywhere}
.lvl{font-weight:600}.lvl-error,.lvl-fatal{color:var(--bad)}.lvl-warn{color:var(--warn)}
h3{font-size:14px;margin:14px 0 6px}
.pauses{margin:8px 0 0}.pauses summary{cursor:pointer;color:var(--muted)}
.pauses ul{margin:6px 0 0;padding-left:18px}.pauses li{overflow-wrap:anywhere}
@media (max-width:600px){header.top,main{padding-left:10px;padding-right:10px}.task{padding:12px 10px}
.hide-narrow{display:none}input[type=text]{width:100%}
table.runs,table.runs tbody{display:block}table.runs thead{display:none}
table.runs tr{display:flex;flex-wrap:wrap;align-items:baseline;gap:2px 10px;padding:6px 0;border-top:1px solid var(--line)}
table.runs td{border:0;padding:0}table.runs td.what{flex-basis:100%}
table.runs .rel{display:inline;margin-left:6px}}
`.trim();

const STYLE_HASH = `sha256-${createHash('sha256').update(STYLE).digest('base64')}`;

export const CONTENT_SECURITY_POLICY = [
  "default-src 'none'",
  `style-src '${STYLE_HASH}'`,
  "img-src 'self' data:",
  "form-action 'self'",
  "frame-ancestors 'none'",
  "base-uri 'none'",
].join('; ');
