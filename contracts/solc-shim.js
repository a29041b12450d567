#!/usr/bin/env node
// A stand-in for a native `solc` binary, so forge can compile offline with npm's solcjs 0.8.37.
// forge calls `solc --version` (parsed as "Version: X.Y.Z+commit.H.Linux.g++") and
// `solc --standard-json` (Standard JSON on stdin, result on stdout). Nothing else is needed.
'use strict';
const fs = require('fs');
const path = require('path');

function loadSolc() {
  // node_modules sits at the repository root, one level above this Foundry project.
  const candidates = [path.join(__dirname, '..', 'node_modules', 'solc'), 'solc'];
  for (const c of candidates) {
    try { return require(c); } catch (e) { /* try the next one */ }
  }
  process.stderr.write('solc-shim: npm package solc not found; run `make setup` (npm ci)\n');
  process.exit(2);
}

function main() {
const args = process.argv.slice(2);
if (args.includes('--version')) {
  const solc = loadSolc();
  // solc.version() is e.g. "0.8.37+commit.f401782d.Emscripten.clang"; forge wants a native-looking line.
  const v = solc.version().replace(/\.Emscripten\.clang$/, '.Linux.g++');
  // Never process.exit() after a write to a pipe: it would cut the output at 64 KiB.
  process.stdout.write('solc, the solidity compiler commandline interface\nVersion: ' + v + '\n');
  return;
}
if (args.includes('--standard-json')) {
  const solc = loadSolc();
  const input = fs.readFileSync(0, 'utf8');
  // Imports are resolved relative to the working directory forge runs us in (and any --allow-paths/base path).
  const basePaths = [process.cwd()];
  const bi = args.indexOf('--base-path');
  if (bi >= 0 && args[bi + 1]) basePaths.unshift(args[bi + 1]);
  function findImports(p) {
    for (const base of basePaths) {
      const full = path.isAbsolute(p) ? p : path.join(base, p);
      if (fs.existsSync(full)) return { contents: fs.readFileSync(full, 'utf8') };
    }
    return { error: 'File not found: ' + p };
  }
  process.stdout.write(solc.compile(input, { import: findImports }));
  return;
}
process.stderr.write('solc-shim: only --version and --standard-json are supported\n');
process.exitCode = 2;
}

main();
