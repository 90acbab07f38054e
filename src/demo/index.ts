// The demo extension's public face: start one, and read or list scenarios.
export { startDemoExtension, defaultDemoSocketPath, type DemoExtension, type DemoExtensionOptions } from './extension.js';
export { formatProblem, parseScenario, type Scenario, type ScenarioProblem } from './scenario.js';
export { DEFAULT_SCENARIO, listScenarioNames, loadScenario, resolveScenarioPath, scenariosDir } from './scenario-files.js';
