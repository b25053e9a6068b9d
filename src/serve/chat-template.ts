/**
 * Chat messages to a prompt: the model's own `chat_template` (Jinja, from tokenizer_config.json, rendered by
 * Hugging Face's @huggingface/jinja as transformers' apply_chat_template does) or, for models without one
 * such as GPT-Neo, a plain default that writes one "role: content" line per message and ends with
 * "assistant:" for the model to continue.
 */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { Template } from '@huggingface/jinja';
import { invalidRequest } from './errors.js';
import type { ChatMessage } from './schemas.js';

export const DEFAULT_CHAT_TEMPLATE =
  "{% for message in messages %}{{ message['role'] }}: {{ message['content'] }}\n{% endfor %}" +
  '{% if add_generation_prompt %}assistant:{% endif %}';

export class ChatTemplate {
  private readonly template: Template;

  constructor(
    readonly source: string,
    private readonly specialTokens: Record<string, string | null>,
  ) {
    this.template = new Template(source);
  }

  /** The model folder's chat_template when tokenizer_config.json has one (a string or a list of named templates). */
  static forModel(folder: string, specialTokens: Record<string, string | null>): ChatTemplate {
    const file = path.join(folder, 'tokenizer_config.json');
    const config = existsSync(file) ? (JSON.parse(readFileSync(file, 'utf8')) as { chat_template?: unknown }) : {};
    let source = config.chat_template;
    if (Array.isArray(source)) source = source.find((entry: { name?: string }) => entry.name === 'default')?.template;
    return new ChatTemplate(typeof source === 'string' ? source : DEFAULT_CHAT_TEMPLATE, specialTokens);
  }

  render(messages: ChatMessage[]): string {
    const plain = messages.map((message) => ({
      ...message,
      content: typeof message.content === 'string' ? message.content : (message.content ?? []).map((part) => part.text).join(''),
    }));
    try {
      return this.template.render({ messages: plain, add_generation_prompt: true, ...this.specialTokens });
    } catch (error) {
      throw invalidRequest(`the model's chat template failed on these messages: ${(error as Error).message}`, 'messages');
    }
  }
}
