export { createServer, type GPTNeoServer, type ServeOptions } from './server.js';
export { DEFAULT_CHAT_TEMPLATE } from './chat-template.js';
export { EMBEDDING_POOLINGS, type EmbeddingPooling } from './embeddings.js';
