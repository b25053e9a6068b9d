import { hellaswag } from './hellaswag.js';
import { lambada } from './lambada.js';
import { mathqa } from './mathqa.js';
import { pile } from './pile.js';
import { piqa } from './piqa.js';
import { pubmedqa } from './pubmedqa.js';
import type { Task } from './task.js';
import { wikitext } from './wikitext.js';
import { winogrande } from './winogrande.js';

/** Every task, in the column order of the GPT-Neo model card's table. */
export const TASK_NAMES = ['pile', 'wikitext', 'lambada', 'winogrande', 'hellaswag', 'mathqa', 'pubmedqa', 'piqa'] as const;

export type TaskName = (typeof TASK_NAMES)[number];

export const TASKS: Record<TaskName, Task> = { pile, wikitext, lambada, winogrande, hellaswag, mathqa, pubmedqa, piqa };

export function isTaskName(name: string): name is TaskName {
  return (TASK_NAMES as readonly string[]).includes(name);
}
