// Reading scenario files: every bad line is named by file:line and skipped; the rest still loads.
import { describe, expect, it } from 'vitest';
import { formatProblem, parseScenario } from '../../src/demo/scenario.js';
import { loadScenario } from '../../src/demo/scenario-files.js';
import { UserError } from '../../src/errors.js';
import { bytesLine, CURL_A, endLine, flowLine, scenarioFile, scenarioText } from './fixtures.js';

/** The scenario's lines with `bad` inserted after the header and attributions; returns its line number. */
function withBadLine(bad: string, events: string[] = []): { text: string; line: number } {
  const good = scenarioText([]).trimEnd().split('\n');
  return { text: [...good, bad, ...events].join('\n') + '\n', line: good.length + 1 };
}

describe('scenario reader', () => {
  const cases: Array<[string, string, RegExp]> = [
    ['truncated JSON', '{"type":"flow","at":1,', /not valid JSON/],
    ['not an object', '[1,2,3]', /JSON object/],
    ['unknown line type', '{"type":"flows","at":0}', /unknown line type "flows"/],
    ['missing at', JSON.stringify({ type: 'end', id: 'x' }), /"at" must be/],
    ['negative at', flowLine(-5, { id: 'n' }), /"at" must be/],
    ['bytes for a flow never started', bytesLine(10, 'ghost', 1, 1), /no earlier flow line starts/],
    ['end of a flow never started', endLine(10, 'ghost'), /no earlier flow line starts/],
    ['bad address', flowLine(0, { id: 'a', remote: '999.1.1.1' }), /flow: .*remote\.address/],
    ['recorded time', JSON.stringify({ type: 'flow', at: 0, flow: { ...JSON.parse(flowLine(0, { id: 't' })).flow, time: 5 } }), /flow.time is set when the flow is replayed/],
    ['misspelt field', JSON.stringify({ type: 'flow', at: 0, flow: { ...JSON.parse(flowLine(0, { id: 'm' })).flow, remotehost: 'x' } }), /unknown field "remotehost"/],
    ['bad pending', flowLine(0, { id: 'p', pending: { deadlineMs: -1 } }), /deadlineMs/],
    ['bad token', JSON.stringify({ type: 'attribution', token: 'not base64!', attribution: { trust: 'secure' } }), /token must be/],
    ['insecure without reason', JSON.stringify({ type: 'attribution', token: 'AAAA', attribution: { trust: 'insecure', name: 'x' } }), /needs a reason/],
    ['pending is no recorded answer', JSON.stringify({ type: 'attribution', token: 'AAAA', attribution: { trust: 'pending' } }), /attribution.trust/],
    ['duplicate attribution', JSON.stringify({ type: 'attribution', token: CURL_A, attribution: { trust: 'secure' } }), /already has an attribution/],
    ['a second header', scenarioText([]).split('\n')[0] as string, /second scenario header/],
  ];
  for (const [what, bad, message] of cases) {
    it(`names file:line for ${what}, and skips only that line`, () => {
      const { text, line } = withBadLine(bad, [flowLine(100, { id: 'after', token: CURL_A })]);
      const { scenario, problems } = parseScenario(text, 'demo/scenarios/broken.ndjson');
      expect(problems).toHaveLength(1);
      expect(formatProblem(problems[0]!)).toMatch(new RegExp(`^demo/scenarios/broken\\.ndjson:${line}: `));
      expect(problems[0]!.message).toMatch(message);
      expect(scenario.events.map((e) => e.kind === 'flow' && e.flow.id)).toContain('after');
    });
  }

  it('checks order and consistency across lines', () => {
    const text = scenarioText([
      flowLine(100, { id: 'a', token: CURL_A }),
      flowLine(50, { id: 'early' }), // out of order
      flowLine(100, { id: 'a' }), // same id again
      bytesLine(200, 'a', 100, 10),
      bytesLine(300, 'a', 50, 10), // counters go down
      endLine(400, 'a'),
      endLine(500, 'a'), // ends twice
      bytesLine(600, 'a', 200, 20), // after its end
    ]);
    const first = text.split('\n').findIndex((l) => l.includes('"id":"a"')) + 1;
    const { problems, scenario } = parseScenario(text, 'x.ndjson');
    expect(problems.map((p) => [p.line - first, p.message.split(' ').slice(0, 3).join(' ')])).toEqual([
      [1, 'at 50 is'],
      [2, 'flow id "a"'],
      [4, 'counters of flow'],
      [6, 'flow "a" ends'],
      [7, 'bytes for flow'],
    ]);
    expect(scenario.events.map((e) => e.kind)).toEqual(['flow', 'bytes', 'end']);
    expect(scenario.lengthMs).toBe(1400);
  });

  it('requires the header first and a replay hello', () => {
    const missing = parseScenario(`${flowLine(0, { id: 'a' })}\n`, 'h.ndjson');
    expect(missing.problems.map(formatProblem)).toEqual(['h.ndjson:1: the first line must be the scenario header ({"type":"scenario", …})']);
    expect(missing.scenario.hello.tokenKind).toBe('replay'); // still playable with a stand-in hello
    const linux = scenarioText([]).replace('"platform":"demo"', '"platform":"linux"');
    expect(parseScenario(linux, 'p.ndjson').problems.map(formatProblem)).toEqual([expect.stringMatching(/^p\.ndjson:1: hello\.platform must be "demo"/)]);
    expect(parseScenario('', 'empty.ndjson').problems.map(formatProblem)).toEqual([expect.stringMatching(/^empty\.ndjson:1: the file is empty/)]);
  });

  it('loads by path and refuses unknown names with the list of shipped ones', () => {
    const path = scenarioFile(scenarioText([flowLine(0, { id: 'a', token: CURL_A })]), 'mine.ndjson');
    expect(loadScenario(path).scenario.events).toHaveLength(1);
    expect(() => loadScenario('no-such-scenario')).toThrow(UserError);
    try {
      loadScenario('no-such-scenario');
    } catch (error) {
      expect((error as UserError).nextStep).toMatch(/default/);
    }
    expect(() => loadScenario('/nonexistent/dir/x.ndjson')).toThrow(/no scenario file/);
  });
});
