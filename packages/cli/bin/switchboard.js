#!/usr/bin/env node
import { main } from '../dist/index.js';

// A reader that closes early (`switchboard audit tail … | head -1`) ends the command quietly, as
// Unix tools do. `agent` bridges speak MCP on stdout and handle its end themselves (a clean close).
if (process.argv[2] !== 'agent') {
  process.stdout.on('error', (err) => {
    if (err.code === 'EPIPE') process.exit(0);
    throw err;
  });
}

process.exitCode = await main(process.argv);
