// The C declarations of the darwin layer, parsed by koffi itself. This runs anywhere koffi does: a
// typo in a type name, a wrong symbol name or a struct of the wrong size fails here, on Linux, long
// before a Mac loads the frameworks (which has NOT YET BEEN DONE — see real.test.ts).
import koffi from 'koffi';
import { describe, expect, it } from 'vitest';
import { DECLARATIONS, darwinStructs, declarationArgs, type DeclarationName } from '../../src/native/darwin/bindings.js';

interface ParsedArgument {
  type: { name: string; primitive: string; size: number };
  direction: string;
}
interface ParsedPrototype {
  name: string;
  result: { name: string; primitive: string };
  arguments: ParsedArgument[];
}

// koffi registers a prototype's name globally: parse each declaration once.
const parsed = new Map<DeclarationName, ParsedPrototype>();
function parse(name: DeclarationName): ParsedPrototype {
  const known = parsed.get(name);
  if (known) return known;
  const args = declarationArgs(DECLARATIONS[name], darwinStructs(koffi));
  const type = (args.length === 1 ? koffi.proto(args[0]) : koffi.proto(args[0], args[1], args[2])) as unknown as { proto: ParsedPrototype };
  parsed.set(name, type.proto);
  return type.proto;
}

const names = Object.keys(DECLARATIONS) as DeclarationName[];

describe('darwin C declarations', () => {
  it.each(names)('%s parses, under its own symbol name', (name) => {
    expect(parse(name).name).toBe(name);
  });

  it('passes audit_token_t by value as 32 bytes and CFRange as two 64-bit CFIndex', () => {
    const { audit_token_t, CFRange } = darwinStructs(koffi);
    expect(koffi.sizeof(audit_token_t)).toBe(32);
    expect(koffi.sizeof(CFRange)).toBe(16);
    for (const name of ['audit_token_to_pid', 'audit_token_to_euid', 'audit_token_to_pidversion'] as const) {
      const [arg, ...rest] = parse(name).arguments;
      expect(rest).toEqual([]);
      expect(arg!.type).toMatchObject({ primitive: 'Record', size: 32 });
    }
    expect(parse('CFDataGetBytes').arguments[1]!.type).toMatchObject({ primitive: 'Record', size: 16 });
  });

  it('every Security.framework call returns an OSStatus (int32) and fills its result through an out-parameter', () => {
    for (const name of names.filter((n) => n.startsWith('Sec'))) {
      const proto = parse(name);
      expect(proto.result.name, name).toBe('int32_t');
      if (name.includes('Copy') || name.includes('Create')) {
        const last = proto.arguments.at(-1)!;
        expect(last.direction, name).toBe('Output');
        expect(last.type.name, name).toBe('void **');
      }
    }
  });

  it('task_info reads and writes its count (in/out), task_name_for_pid writes the port', () => {
    expect(parse('task_info').arguments[3]!.direction).toBe('Input/Output');
    expect(parse('task_name_for_pid').arguments[2]!.direction).toBe('Output');
  });
});
