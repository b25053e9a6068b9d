export { compileConstraint, constraintKind, grammarOf, type ConstraintSpec } from './compile.js';
export { Constraint, ConstraintState } from './constraint.js';
export { ConstraintError, compileGrammar } from './grammar.js';
export { TokenVocabulary, tokenizerVocabulary, type ByteTokenizer, type TokenBytesSource } from './vocabulary.js';
