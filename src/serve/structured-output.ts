/**
 * The structured-output fields of a request (OpenAI's response_format, vLLM's guided_json, guided_regex and
 * guided_choice) as the one constraint generate() and the engine understand. At most one may be set.
 */
import type { ConstraintSpec } from '../constraints/index.js';
import { invalidRequest } from './errors.js';
import type { SamplingBody } from './schemas.js';

export interface RequestConstraint {
  spec: ConstraintSpec;
  /** The field it came from, named in 400s. */
  param: string;
}

export function requestConstraint(body: SamplingBody): RequestConstraint | null {
  const found: RequestConstraint[] = [];
  const format = body.response_format;
  if (format && format.type === 'json_object') found.push({ spec: { json_object: true }, param: 'response_format' });
  if (format && format.type === 'json_schema') {
    if (!format.json_schema?.schema) throw invalidRequest('response_format of type json_schema needs json_schema.schema', 'response_format');
    found.push({ spec: { json_schema: format.json_schema.schema }, param: 'response_format' });
  }
  if (body.guided_json !== undefined && body.guided_json !== null) found.push({ spec: { json_schema: parsedSchema(body.guided_json) }, param: 'guided_json' });
  if (typeof body.guided_regex === 'string') found.push({ spec: { regex: body.guided_regex }, param: 'guided_regex' });
  if (body.guided_choice) found.push({ spec: { choice: body.guided_choice }, param: 'guided_choice' });
  if (found.length > 1) {
    throw invalidRequest(`only one of response_format (json), guided_json, guided_regex and guided_choice may be set; got ${found.map((f) => f.param).join(' and ')}`, found[1]!.param);
  }
  return found[0] ?? null;
}

function parsedSchema(value: Record<string, unknown> | string): unknown {
  if (typeof value !== 'string') return value;
  try {
    return JSON.parse(value);
  } catch {
    throw invalidRequest('guided_json is a string that is not JSON; send the schema as an object or as JSON text', 'guided_json');
  }
}
