// `import log from 'log'` is the component's import of the contract's log; under Node it resolves to
// log.mjs, which records the lines for the tests. Loaded with `node --import ./test/register.mjs`.
import { register } from 'node:module';

const recorder = new URL('./log.mjs', import.meta.url).href;
const resolveHook = `export function resolve(specifier, context, next) {
  return specifier === 'log' ? { url: ${JSON.stringify(recorder)}, shortCircuit: true } : next(specifier, context);
}`;
register(`data:text/javascript,${encodeURIComponent(resolveHook)}`);
