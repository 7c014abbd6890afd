// The modules the page loads must run unchanged in Safari on iOS 15 and Chrome 69, and hold no
// clock, randomness or DOM of their own. A real parser, acorn (fetched by `cargo xtask test`,
// MAESTRAL_ACORN), parses each as ECMAScript 2019, the newest syntax both browsers run; the scan
// below (comments and string literals removed) adds the library calls and the rules a parser
// cannot see (no clock, no DOM in the rules).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';

const MODULES = ['follower.mjs', 'core.mjs', 'position.mjs', 'resume.mjs', 'envelope.mjs', 'json.mjs', 'actions.mjs', 'heartbeat.mjs'];

function source(name) {
  return readFileSync(new URL('../' + name, import.meta.url), 'utf8');
}

// Code without comments and without the contents of string and template literals (a regex
// literal is kept: its syntax matters too).
function code(text) {
  let out = '';
  let i = 0;
  while (i < text.length) {
    const c = text[i];
    const next = text[i + 1];
    if (c === '/' && next === '/') {
      while (i < text.length && text[i] !== '\n') i++;
    } else if (c === '/' && next === '*') {
      i = text.indexOf('*/', i + 2) + 2;
    } else if (c === "'" || c === '"' || c === '`') {
      let j = i + 1;
      while (j < text.length && text[j] !== c) j += text[j] === '\\' ? 2 : 1;
      out += c + c;
      i = j + 1;
    } else {
      out += c;
      i++;
    }
  }
  return out;
}

// Lines inside top-level class bodies (the modules close a class with `}` in column 0).
function classBodies(text) {
  const lines = text.split('\n');
  const body = [];
  let inside = false;
  lines.forEach((l) => {
    if (/^(export )?class /.test(l)) inside = true;
    else if (inside && l === '}') inside = false;
    else if (inside) body.push(l);
  });
  return body;
}

const FORBIDDEN = [
  [/\?\.(?!\d)/, 'optional chaining (Chrome 80)'],
  [/\?\?/, 'nullish coalescing (Chrome 80)'],
  [/(\|\||&&|\?\?)=/, 'logical assignment (ES2021)'],
  [/#[A-Za-z_$]/, 'private class members'],
  [/\bstatic\s*\{/, 'static blocks'],
  [/\bawait\b/, 'await (top-level await is ES2022; the rules need none)'],
  [/\.at\(/, 'Array.prototype.at'],
  [/\bhasOwn\b/, 'Object.hasOwn'],
  [/\bstructuredClone\b/, 'structuredClone'],
  [/\bfindLast(Index)?\b/, 'findLast'],
  [/\breplaceAll\b/, 'replaceAll'],
  [/\bfromEntries\b/, 'Object.fromEntries (Chrome 73)'],
  [/\bglobalThis\b/, 'globalThis (Chrome 71)'],
  [/\.flat(Map)?\(/, 'Array.prototype.flat (Chrome 69 only partly)'],
  [/\bmatchAll\b/, 'matchAll (Chrome 73)'],
  [/\(\?<[=!]/, 'regex lookbehind (Safari 16.4)'],
  [/\\p\{/, 'regex Unicode property escapes'],
  [/\d_\d/, 'numeric separators (ES2021)'],
  [/\b\d+n\b/, 'BigInt literals'],
  [/\bBigInt\b|\bWeakRef\b|\bPromise\.any\b|\bAggregateError\b/, 'ES2020+ built-ins'],
  [/\bimport\(/, 'dynamic import'],
];

const IMPURE = [
  [/\bMath\.random\b/, 'Math.random (randomness comes in as a function)'],
  [/\bDate\b/, 'Date (time comes in as t)'],
  [/\bperformance\b/, 'performance (time comes in as t)'],
  [/\b(window|document|navigator|localStorage|sessionStorage|location)\b/, 'the DOM'],
  [/\b(setTimeout|setInterval|requestAnimationFrame)\b/, 'timers (the page calls tick)'],
  [/\b(process|require|Buffer)\b/, 'Node.js'],
  [/\bcrypto\b/, 'crypto (randomness comes in as a function)'],
  [/\bconsole\b/, 'console'],
];

MODULES.forEach((name) => {
  test(name + ' uses only what Safari 15 and Chrome 69 have', () => {
    const text = source(name);
    const c = code(text);
    FORBIDDEN.forEach(([re, what]) => {
      const m = re.exec(c);
      assert.equal(m, null, name + ': ' + what + ' near «' + (m ? c.slice(Math.max(0, m.index - 40), m.index + 20) : '') + '»');
    });
    classBodies(code(text)).forEach((line) => {
      assert.doesNotMatch(line, /^\s{2}(static\s+)?[A-Za-z_$][\w$]*\s*(=[^=>]|;)/, name + ': a class field: ' + line);
    });
    text.split('\n').forEach((line) => {
      assert.doesNotMatch(line, /from '\.\.\//, name + ': imports stay inside web/');
    });
  });

  test(name + ' has no clock, randomness, DOM or Node.js of its own', () => {
    const c = code(source(name));
    IMPURE.forEach(([re, what]) => {
      const m = re.exec(c);
      assert.equal(m, null, name + ': ' + what + ' near «' + (m ? c.slice(Math.max(0, m.index - 40), m.index + 20) : '') + '»');
    });
  });
});

// The page's own code (app.mjs: the DOM, the transport, the clock) is held to the same syntax
// and library rules, less `await`: async functions are ES2017, in both browsers.
test('app.mjs uses only what Safari 15 and Chrome 69 have', () => {
  const c = code(source('app.mjs'));
  FORBIDDEN.filter(([re]) => !re.test('await')).forEach(([re, what]) => {
    const m = re.exec(c);
    assert.equal(m, null, 'app.mjs: ' + what + ' near «' + (m ? c.slice(Math.max(0, m.index - 40), m.index + 20) : '') + '»');
  });
  classBodies(c).forEach((line) => {
    assert.doesNotMatch(line, /^\s{2}(static\s+)?[A-Za-z_$][\w$]*\s*(=[^=>]|;)/, 'app.mjs: a class field: ' + line);
  });
});

// What a hostile Master or singer sends (a name, a song id, an error text) is shown as text: the
// page never parses a string as markup.
test('app.mjs never puts a string into the page as markup', () => {
  const c = code(source('app.mjs'));
  [/\binnerHTML\b/, /\bouterHTML\b/, /\binsertAdjacentHTML\b/, /\bdocument\.write/, /\beval\s*\(/, /\bnew\s+Function\b/, /\bcreateContextualFragment\b/]
    .forEach((re) => assert.equal(re.exec(c), null, 'app.mjs uses ' + re));
});

// acorn, when `cargo xtask test` fetched it (a plain `node --test` has none).
const ACORN = process.env.MAESTRAL_ACORN || '';
const noParser = ACORN === '' ? 'MAESTRAL_ACORN is not set (cargo xtask test sets it)' : false;

test('every module the page loads parses as ECMAScript 2019', { skip: noParser }, async () => {
  const { parse } = await import(pathToFileURL(ACORN).href);
  const es2019 = (text) => parse(text, { ecmaVersion: 2019, sourceType: 'module' });
  MODULES.concat(['app.mjs']).forEach((name) => {
    assert.doesNotThrow(() => es2019(source(name)), name);
  });
  // The parser refuses what those browsers lack.
  ['a?.b;', 'a ?? b;', 'a ||= b;', 'class A { x = 1; }', 'await f();', 'const n = 1_000;', 'export * as m from "./m.mjs";']
    .forEach((text) => assert.throws(() => es2019(text), SyntaxError, text));
});

test('the guard catches what it looks for', () => {
  const c = code("const a = b?.c; // x?.y\nconst s = 'a?.b';\n");
  assert.ok(FORBIDDEN[0][0].test(c));
  assert.ok(!FORBIDDEN[0][0].test(code("const s = 'a?.b'; const n = x ?.5 : 1;")));
  assert.deepEqual(classBodies('class A {\n  x = 1;\n  f() {}\n}\n'), ['  x = 1;', '  f() {}']);
});
