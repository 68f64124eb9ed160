// peers.mjs SENTENCES.jsonl -- eld, cld and franc-all on each sentence, one JSON line per
// detector: its predictions, the languages it supports, the seconds it took to load and to
// classify.  Run from the folder whose node_modules holds them (bench/lid/run installs them).
import { readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { performance } from 'node:perf_hooks'

const rows = readFileSync(process.argv[2], 'utf8').split('\n').filter(Boolean).map(JSON.parse)
const require = createRequire(process.cwd() + '/')

async function run(name, load) {
  let t0 = performance.now()
  let d
  try {
    d = await load()
  } catch (e) {
    console.log(JSON.stringify({ detector: name, error: String(e).slice(0, 200) }))
    return
  }
  const loadS = (performance.now() - t0) / 1e3
  t0 = performance.now()
  const pred = []
  for (const r of rows) pred.push(await d.detect(r.text))
  const runS = (performance.now() - t0) / 1e3
  console.log(JSON.stringify({ detector: name, supports: d.supports, load_s: loadS, run_s: runS, pred }))
}

await run('eld', async () => {
  const { eld } = await import(process.cwd() + '/node_modules/eld/src/entries/dynamic.js')
  await eld.load('medium')
  return { supports: Object.values(eld.info().Languages), detect: (t) => eld.detect(t).language || 'und' }
})
await run('cld', async () => {
  const cld = require('cld')
  return {
    supports: Object.values(cld.LANGUAGES),
    detect: async (t) => {
      try {
        const r = await cld.detect(t)
        return r.languages.length ? r.languages[0].code : 'und'
      } catch (e) {
        return 'und'
      }
    }
  }
})
await run('franc-all', async () => {
  const { franc } = await import(process.cwd() + '/node_modules/franc-all/index.js')
  const { expressions } = await import(process.cwd() + '/node_modules/franc-all/expressions.js')
  const { data } = await import(process.cwd() + '/node_modules/franc-all/data.js')
  const supports = []
  for (const k of Object.keys(expressions)) supports.push(...(k in data ? Object.keys(data[k]) : [k]))
  return { supports, detect: (t) => franc(t, { minLength: 1 }) }
})
