/** Prometheus metrics (prom-client), in a registry of the server's own so several servers in one process do not mix. */
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { PrefixCacheStats } from '../kv/index.js';

export interface ServerMetrics {
  registry: Registry;
  requests: Counter<'endpoint' | 'status'>;
  promptTokens: Counter;
  generatedTokens: Counter;
  timeToFirstToken: Histogram;
  timePerOutputToken: Histogram;
}

export function createMetrics(state: { queueLength(): number; runningBatch(): number; prefixCache(): PrefixCacheStats }): ServerMetrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'gpt_neo_' });
  const registers = [registry];
  new Gauge({
    name: 'gpt_neo_queue_length',
    help: 'Sequences waiting for a KV-cache slot',
    registers,
    collect() {
      this.set(state.queueLength());
    },
  });
  new Gauge({
    name: 'gpt_neo_running_batch_size',
    help: 'Sequences holding a KV-cache slot (reading their prompt or generating)',
    registers,
    collect() {
      this.set(state.runningBatch());
    },
  });
  // Counters that follow the prefix cache's own running totals (vLLM's prefix_cache_queries and _hits).
  const followed = (name: string, help: string, total: () => number) => {
    let reported = 0;
    new Counter({
      name,
      help,
      registers,
      collect() {
        const now = total();
        this.inc(now - reported);
        reported = now;
      },
    });
  };
  followed('gpt_neo_prefix_cache_lookups_total', 'Prompts looked up in the prefix cache', () => state.prefixCache().lookups);
  followed('gpt_neo_prefix_cache_hit_tokens_total', 'Prompt tokens whose keys and values came from the prefix cache', () => state.prefixCache().hitTokens);
  new Gauge({
    name: 'gpt_neo_prefix_cache_bytes',
    help: 'Bytes of keys and values the prefix cache holds',
    registers,
    collect() {
      this.set(state.prefixCache().bytes);
    },
  });
  return {
    registry,
    requests: new Counter({ name: 'gpt_neo_requests_total', help: 'HTTP requests by endpoint and status', labelNames: ['endpoint', 'status'], registers }),
    promptTokens: new Counter({ name: 'gpt_neo_prompt_tokens_total', help: 'Prompt tokens processed', registers }),
    generatedTokens: new Counter({ name: 'gpt_neo_generation_tokens_total', help: 'Tokens generated', registers }),
    timeToFirstToken: new Histogram({
      name: 'gpt_neo_time_to_first_token_seconds',
      help: 'From request to the first generated token of a sequence',
      buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
      registers,
    }),
    timePerOutputToken: new Histogram({
      name: 'gpt_neo_time_per_output_token_seconds',
      help: 'Time between generated tokens of a sequence',
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers,
    }),
  };
}
