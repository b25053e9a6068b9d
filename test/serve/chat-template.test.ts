// Chat messages to a prompt: the model's own Jinja chat_template when tokenizer_config.json has one, else the
// documented default.
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ChatTemplate } from '../../src/serve/chat-template.js';
import { OpenAIError } from '../../src/serve/errors.js';
import { fixture } from '../helpers/fixtures.js';

const SPECIAL = { bos_token: '<|endoftext|>', eos_token: '<|endoftext|>' };
const MESSAGES = [
  { role: 'system', content: 'Be brief.' },
  { role: 'user', content: [{ type: 'text' as const, text: 'Hi ' }, { type: 'text' as const, text: 'there' }] },
];

function folderWith(chatTemplate: unknown): string {
  const folder = mkdtempSync(path.join(os.tmpdir(), 'gpt-neo-chat-'));
  writeFileSync(path.join(folder, 'tokenizer_config.json'), JSON.stringify({ chat_template: chatTemplate }));
  return folder;
}

describe('ChatTemplate', () => {
  it('uses the plain default for a model without a chat_template, joining text parts', () => {
    const template = ChatTemplate.forModel(fixture('tiny-gpt2vocab'), SPECIAL);
    expect(template.render(MESSAGES)).toBe('system: Be brief.\nuser: Hi there\nassistant:');
  });

  it("renders the model's own template with its special tokens and add_generation_prompt", () => {
    const chatml =
      "{{ bos_token }}{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}" +
      '{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}';
    expect(ChatTemplate.forModel(folderWith(chatml), SPECIAL).render(MESSAGES)).toBe(
      '<|endoftext|><|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi there<|im_end|>\n<|im_start|>assistant\n',
    );
    const named = [{ name: 'tool_use', template: 'tools' }, { name: 'default', template: '{{ messages | length }} messages' }];
    expect(ChatTemplate.forModel(folderWith(named), SPECIAL).render(MESSAGES)).toBe('2 messages');
  });

  it("turns a template's own error into a 400 naming messages", () => {
    const strict = "{% if messages[0].role != 'user' %}{{ raise_exception('Conversations must start with a user message') }}{% endif %}";
    const render = () => ChatTemplate.forModel(folderWith(strict), SPECIAL).render(MESSAGES);
    expect(render).toThrow(OpenAIError);
    expect(render).toThrow('Conversations must start with a user message');
  });
});
