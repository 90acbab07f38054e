// The macOS AttributionBackend: resolves batches of audit tokens through the darwin native layer.
// createDarwinBackend() binds the real frameworks (macOS only); tests pass a fake DarwinBindings.
// NOT YET RUN ON A MAC: exercised on Linux through the fake; test/native-darwin/real.test.ts is the
// darwin-only check of the real calls.
import type { Attribution, AttributionBackend } from '../../attribution/types.js';
import { loadDarwinBindings, type DarwinBindings } from './bindings.js';
import { readTypeIds } from './cf.js';
import { createSignerRequirements, resolveAuditToken, type ResolveContext } from './resolve.js';

export function createDarwinBackend(bindings?: DarwinBindings): AttributionBackend {
  const b = bindings ?? loadDarwinBindings();
  let context: ResolveContext | undefined;
  let closed = false;

  const ready = (): ResolveContext => {
    context ??= { b, ids: readTypeIds(b), requirements: createSignerRequirements(b) };
    return context;
  };

  return {
    kind: 'darwin',
    async resolve(tokens) {
      if (closed) return tokens.map(() => closedAnswer());
      const ctx = ready();
      const results: Attribution[] = [];
      for (const token of tokens) {
        // The Security.framework calls are synchronous: give the event loop a turn between tokens
        // so a large batch does not freeze the screen.
        if (results.length > 0) await new Promise<void>((resolve) => setImmediate(resolve));
        if (closed) results.push(closedAnswer());
        else results.push(resolveOne(ctx, token));
      }
      return results;
    },
    close() {
      closed = true;
      context?.requirements.release();
      context = undefined;
    },
  };
}

/** One bad token never fails the batch: an unexpected throw becomes an `insecure` answer with the reason. */
function resolveOne(ctx: ResolveContext, token: Uint8Array): Attribution {
  try {
    return resolveAuditToken(ctx, token);
  } catch (error) {
    return {
      trust: 'insecure',
      reason: { call: 'resolve audit token', message: `the lookup failed: ${error instanceof Error ? error.message : String(error)}` },
    };
  }
}

function closedAnswer(): Attribution {
  return { trust: 'insecure', reason: { call: 'resolve audit token', message: 'the macOS attribution layer was closed' } };
}
