# gpt-neo serve in a container: one replica per machine, scaled out behind any HTTP load balancer (docs/serve.md).
#   docker build -t gpt-neo .
#   docker run -p 8000:8000 -v gpt-neo-data:/data -e GPT_NEO_MODEL=EleutherAI/gpt-neo-1.3B -e GPT_NEO_DTYPE=q8 gpt-neo
FROM node:20-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json tsconfig.json ./
COPY src ./src
COPY scripts ./scripts
# `npm ci` builds dist/ through the prepare script; the dev dependencies are dropped afterwards.
# The image's npm 10 ignores package.json's allowScripts, so onnxruntime-node's installer is told by its own
# variable not to fetch the CUDA libraries, which a CPU image never loads (docs/install.md).
RUN ONNXRUNTIME_NODE_INSTALL=skip npm ci && npm prune --omit=dev

FROM node:20-bookworm-slim
WORKDIR /app
COPY --from=build /app/package.json ./
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
# Downloads and converted models live in the /data volume, so a restarted container neither downloads nor converts again.
RUN mkdir -p /data && chown node:node /data
USER node
# glibc.malloc.hugetlb=1: ONNX Runtime's pre-packed q8/q4 weights in 2 MiB pages (faster decoding, docs/speed.md).
ENV NODE_ENV=production \
    HF_HOME=/data/huggingface \
    GPT_NEO_CACHE=/data/gpt-neo \
    GPT_NEO_HOST=0.0.0.0 \
    GPT_NEO_PORT=8000 \
    GLIBC_TUNABLES=glibc.malloc.hugetlb=1
VOLUME /data
EXPOSE 8000
HEALTHCHECK --start-period=300s CMD node -e "fetch('http://127.0.0.1:8000/health').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"
# Every flag can be given as GPT_NEO_<FLAG> (GPT_NEO_MODEL, GPT_NEO_DTYPE, GPT_NEO_MAX_BATCH, GPT_NEO_API_KEY ...).
ENTRYPOINT ["node", "dist/cli/main.js", "serve"]
