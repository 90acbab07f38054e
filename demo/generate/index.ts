// Every generated scenario, by file name. Regenerate the files with:
//   FLOWTOP_WRITE_SCENARIOS=1 npx vitest run test/demo/scenario-files.test.ts
import { burstScenario, linuxScenario } from './linux.js';
import { macosScenario } from './macos.js';

export function generatedScenarios(): Map<string, string> {
  return new Map([
    ['default.ndjson', macosScenario()],
    ['linux.ndjson', linuxScenario()],
    ['burst.ndjson', burstScenario()],
  ]);
}
