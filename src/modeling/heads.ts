// transformers' GPTNeoModel and the three task heads of GPT-Neo. Each is a variant of the one graph in
// gpt-neo.ts (the same transformer, a different last layer), run over whole sequences by fullPass.
import { type GPTNeoConfig, loadConfig } from '../model/config.js';
import { InputError } from '../model/errors.js';
import { fullPass, hiddenStateOutputs, LazyVariant } from './full-pass.js';
import { type GraphVariant, IO } from '../model/gpt-neo.js';
import { closeConvertedModel, type ConvertedModel, type FromPretrainedOptions, openConvertedModel } from '../convert/load.js';
import { WeightMismatchError, type WeightFormat } from '../convert/parameters.js';
import type { Float32Tensor, ForwardInput } from '../model/types.js';

export interface HiddenStatesInput extends ForwardInput {
  /** Also return hidden_states: num_layers + 1 tensors [batch, seq, hidden] (embeddings, blocks, ln_f). */
  output_hidden_states?: boolean;
}

export interface BaseModelOutput {
  /** [batch, seq, hidden]: the final LayerNorm's output. */
  last_hidden_state: Float32Tensor;
  hidden_states?: Float32Tensor[];
}

export interface SequenceClassifierOutput {
  /** [batch, num_labels], read at each row's last token that is not pad_token_id. */
  logits: Float32Tensor;
  hidden_states?: Float32Tensor[];
}

export interface TokenClassifierOutput {
  /** [batch, seq, num_labels] */
  logits: Float32Tensor;
  hidden_states?: Float32Tensor[];
}

export interface QuestionAnsweringOutput {
  /** [batch, seq] each: how likely the answer span starts / ends at each token. */
  start_logits: Float32Tensor;
  end_logits: Float32Tensor;
  hidden_states?: Float32Tensor[];
}

/** The linear layer each head reads, named as in the Hugging Face checkpoints. */
const HEAD_LAYERS: Partial<Record<GraphVariant, string>> = {
  'sequence-classification': 'score',
  'token-classification': 'classifier',
  'question-answering': 'qa_outputs',
};

/** What every non-generating GPT-Neo class shares: loading its graph variant and running a full pass. */
abstract class GPTNeoPreTrainedModel {
  protected constructor(protected readonly model: ConvertedModel) {}

  get config(): GPTNeoConfig {
    return this.model.config;
  }

  get dtype(): WeightFormat {
    return this.model.dtype;
  }

  /** Converts (on first use) and opens `folder` as this head; the checkpoint must hold the head's weights. */
  protected static async open(
    folder: string,
    options: FromPretrainedOptions,
    className: string,
    variant: GraphVariant,
  ): Promise<ConvertedModel> {
    const config = await loadConfig(folder);
    try {
      return await openConvertedModel(folder, config, options, variant);
    } catch (error) {
      const layer = HEAD_LAYERS[variant];
      if (!(error instanceof WeightMismatchError) || !layer || !error.message.includes(`'${layer}.`)) throw error;
      const labels = variant === 'question-answering' ? '' : ` with num_labels ${config.num_labels} rows (config.json's id2label)`;
      throw new WeightMismatchError(
        `${error.message}: ${className} reads its head from '${layer}'${labels}; ` +
          `config.json lists architectures [${config.architectures.join(', ')}]`,
      );
    }
  }

  /** The full pass, with HF's hidden_states added when asked for. */
  protected async run(input: HiddenStatesInput, fetches: string[], rows?: (inputIds: number[][], seq: number) => number[]) {
    const hiddenStates = input.output_hidden_states ? hiddenStateOutputs(this.config) : [];
    const pass = await fullPass(this.model, input, [...fetches, ...hiddenStates], rows);
    return { pass, hidden: hiddenStates.length > 0 ? { hidden_states: hiddenStates.map(pass.perToken) } : {} };
  }

  async dispose(): Promise<void> {
    await closeConvertedModel(this.model);
  }
}

/** The bare transformer: hidden states, no head (transformers' GPTNeoModel). */
export class GPTNeoModel extends GPTNeoPreTrainedModel {
  private constructor(
    model: ConvertedModel,
    /** The graph variant with every hidden state as an output, converted and opened on the first forward that asks. */
    private readonly withHiddenStates: LazyVariant,
  ) {
    super(model);
  }

  static async from_pretrained(folder: string, options: FromPretrainedOptions = {}): Promise<GPTNeoModel> {
    const model = await this.open(folder, options, 'GPTNeoModel', 'base');
    return new GPTNeoModel(model, new LazyVariant(() => this.open(folder, options, 'GPTNeoModel', 'base-hidden-states')));
  }

  async forward(input: HiddenStatesInput): Promise<BaseModelOutput> {
    const last = IO.hiddenStates(this.config.num_layers);
    if (!input.output_hidden_states) {
      const pass = await fullPass(this.model, input, [last]);
      return { last_hidden_state: pass.perToken(last) };
    }
    const pass = await fullPass(await this.withHiddenStates.get(), input, hiddenStateOutputs(this.config));
    return { last_hidden_state: pass.perToken(last), hidden_states: hiddenStateOutputs(this.config).map(pass.perToken) };
  }

  override async dispose(): Promise<void> {
    await super.dispose();
    await this.withHiddenStates.close();
  }
}

/** Scores for a whole sequence, from its last real token (transformers' GPTNeoForSequenceClassification). */
export class GPTNeoForSequenceClassification extends GPTNeoPreTrainedModel {
  static async from_pretrained(folder: string, options: FromPretrainedOptions = {}): Promise<GPTNeoForSequenceClassification> {
    const model = await this.open(folder, options, 'GPTNeoForSequenceClassification', 'sequence-classification');
    return new GPTNeoForSequenceClassification(model);
  }

  async forward(input: HiddenStatesInput): Promise<SequenceClassifierOutput> {
    const rows = (inputIds: number[][], T: number) => pooledTokens(inputIds, this.config.pad_token_id).map((t, b) => b * T + t);
    const { pass, hidden } = await this.run(input, [IO.logits], rows);
    return { logits: { data: pass.outputs[IO.logits]!.data as Float32Array, dims: [pass.batch, this.config.num_labels] }, ...hidden };
  }
}

/** Scores for every token (transformers' GPTNeoForTokenClassification). */
export class GPTNeoForTokenClassification extends GPTNeoPreTrainedModel {
  static async from_pretrained(folder: string, options: FromPretrainedOptions = {}): Promise<GPTNeoForTokenClassification> {
    const model = await this.open(folder, options, 'GPTNeoForTokenClassification', 'token-classification');
    return new GPTNeoForTokenClassification(model);
  }

  async forward(input: HiddenStatesInput): Promise<TokenClassifierOutput> {
    const { pass, hidden } = await this.run(input, [IO.logits]);
    return { logits: pass.perToken(IO.logits), ...hidden };
  }
}

/** Extractive question answering: where the answer starts and ends (transformers' GPTNeoForQuestionAnswering). */
export class GPTNeoForQuestionAnswering extends GPTNeoPreTrainedModel {
  static async from_pretrained(folder: string, options: FromPretrainedOptions = {}): Promise<GPTNeoForQuestionAnswering> {
    const model = await this.open(folder, options, 'GPTNeoForQuestionAnswering', 'question-answering');
    return new GPTNeoForQuestionAnswering(model);
  }

  async forward(input: HiddenStatesInput): Promise<QuestionAnsweringOutput> {
    const { pass, hidden } = await this.run(input, [IO.startLogits, IO.endLogits]);
    const perRow = (name: string) => ({ data: pass.outputs[name]!.data as Float32Array, dims: [pass.batch, pass.seq] });
    return { start_logits: perRow(IO.startLogits), end_logits: perRow(IO.endLogits), ...hidden };
  }
}

/**
 * The token each row is classified by: the rightmost one that is not pad_token_id (transformers >= 4.48; 0 for
 * a row of only padding). Without a pad token only a single row is unambiguous, and HF refuses a batch.
 */
export function pooledTokens(inputIds: number[][], padTokenId: number | null): number[] {
  if (padTokenId === null) {
    if (inputIds.length > 1) {
      throw new InputError(
        'Cannot handle batch sizes > 1 if no padding token is defined: config.json has no pad_token_id, so the last ' +
          'real token of a padded row is unknown (classify rows one at a time, or set pad_token_id)',
      );
    }
    return inputIds.map((row) => row.length - 1);
  }
  return inputIds.map((row) => row.reduce((last, id, t) => (id !== padTokenId ? t : last), 0));
}
