// The import rules of docs/ARCHITECTURE.md ("Layout"), checked by `npm run depcheck` (part of `npm test`).
// Sources are parsed with swc: the project's TypeScript 7 has no compiler API for dependency-cruiser,
// and swc keeps `import type` declarations, so a type-only import counts like any other.

/** The base libraries: every folder under src/ except the framework and what plugs into it. */
const BASE_LIBRARY = '^src/(?!event/|apps/|modules/)[^/]+/';

module.exports = {
  forbidden: [
    {
      name: 'no-cycle',
      comment: 'No import cycle under src/, type-only imports included: two files that need each other cannot be read apart.',
      severity: 'error',
      from: { path: '^src/' },
      to: { circular: true },
    },
    {
      name: 'base-library-imports-framework',
      comment: 'A base library (thread, bdev, nvmf, nvme, wire, jsonrpc, util, ...) never imports the event framework, the apps or the plug-in modules.',
      severity: 'error',
      from: { path: BASE_LIBRARY },
      to: { path: '^src/(event|apps|modules)/' },
    },
    {
      name: 'framework-imports-plugins',
      comment: 'The event framework never imports its plug-ins (modules/) or the apps: the app hands it the tables.',
      severity: 'error',
      from: { path: '^src/event/' },
      to: { path: '^src/(modules|apps)/' },
    },
  ],
  options: {
    parser: 'swc',
    includeOnly: '^src/',
    moduleSystems: ['es6'],
    doNotFollow: { path: 'node_modules' },
  },
};
