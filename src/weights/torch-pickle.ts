import { CheckpointError } from './errors.js';
import { PickleCallable, unpickle, type UnpickleHooks } from './pickle.js';

/** A storage inside the torch zip: entry `<prefix>data/<key>` holding `elementCount` elements of `dtype`. */
export interface TorchStorage {
  dtype: string;
  key: string;
  elementCount: number;
}

/** A tensor as torch pickles it: a view (offset, shape, stride in elements) into a storage. */
export interface TorchTensor {
  storage: TorchStorage;
  storageOffset: number;
  shape: number[];
  stride: number[];
}

/** The legacy typed storage classes torch.save still names in pickles, by safetensors dtype. */
const STORAGE_CLASS_DTYPES: Readonly<Record<string, string>> = {
  FloatStorage: 'F32',
  HalfStorage: 'F16',
  BFloat16Storage: 'BF16',
  DoubleStorage: 'F64',
  ByteStorage: 'U8',
  BoolStorage: 'BOOL',
  CharStorage: 'I8',
  ShortStorage: 'I16',
  IntStorage: 'I32',
  LongStorage: 'I64',
};

class StorageClass {
  constructor(readonly dtype: string) {}
}

class StorageReference implements TorchStorage {
  constructor(
    readonly dtype: string,
    readonly key: string,
    readonly elementCount: number,
  ) {}
}

class TensorValue {
  constructor(readonly tensor: TorchTensor) {}
}

/** Parses a torch state_dict pickle into its tensors, in pickle order, refusing every global but a state_dict's. */
export function parseTorchStateDict(pickle: Uint8Array, file: string): Map<string, TorchTensor> {
  const fail = (message: string): never => {
    throw new CheckpointError(`${file}: ${message}`);
  };

  const allowedCallables: Record<string, (args: readonly unknown[]) => unknown> = {
    'collections.OrderedDict': (args) => (args.length === 0 ? new Map() : fail('OrderedDict built from arguments')),
    'torch._utils._rebuild_tensor_v2': (args) => rebuildTensor(args, fail),
    'torch._utils._rebuild_parameter': ([data]) =>
      data instanceof TensorValue ? data : fail('_rebuild_parameter of something that is not a tensor'),
  };

  const hooks: UnpickleHooks = {
    resolveGlobal(module, name) {
      const qualifiedName = `${module}.${name}`;
      if (Object.hasOwn(allowedCallables, qualifiedName)) {
        return new PickleCallable(qualifiedName, allowedCallables[qualifiedName]);
      }
      if (module === 'torch' && Object.hasOwn(STORAGE_CLASS_DTYPES, name)) return new StorageClass(STORAGE_CLASS_DTYPES[name]);
      return fail(`refusing to load global '${qualifiedName}' (only state_dict tensors are allowed)`);
    },
    persistentLoad(persistentId) {
      // ('storage', StorageClass, key, location, element count)
      if (!Array.isArray(persistentId) || persistentId.length !== 5 || persistentId[0] !== 'storage') {
        return fail(`unsupported persistent id ${describe(persistentId)}`);
      }
      const [, storageClass, key, , count] = persistentId;
      if (!(storageClass instanceof StorageClass) || typeof key !== 'string' || !isNonNegativeInteger(count)) {
        return fail(`malformed storage reference ${describe(persistentId)}`);
      }
      return new StorageReference(storageClass.dtype, key, count);
    },
    build(target, state) {
      // An OrderedDict state_dict carries `_metadata` (module versions) as instance state: irrelevant to tensors.
      if (!(target instanceof Map && state instanceof Map)) fail('BUILD on something other than a dict');
    },
  };

  const root = unpickle(pickle, hooks, file);
  if (!(root instanceof Map)) return fail('the pickle is not a state_dict (a dict of tensors)');
  const tensors = new Map<string, TorchTensor>();
  for (const [name, value] of root) {
    if (typeof name !== 'string') fail(`state_dict key ${describe(name)} is not a string`);
    if (!(value instanceof TensorValue)) return fail(`state_dict entry '${name}' is not a tensor`);
    tensors.set(name, value.tensor);
  }
  return tensors;
}

/** torch._utils._rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata]) */
function rebuildTensor(args: readonly unknown[], fail: (message: string) => never): TensorValue {
  const [storage, storageOffset, shape, stride] = args;
  if (
    (args.length !== 6 && args.length !== 7) ||
    !(storage instanceof StorageReference) ||
    !isNonNegativeInteger(storageOffset) ||
    !isIntegerList(shape) ||
    !isIntegerList(stride) ||
    shape.length !== stride.length
  ) {
    return fail(`_rebuild_tensor_v2 called with unexpected arguments ${describe(args)}`);
  }
  return new TensorValue({ storage, storageOffset, shape: [...shape], stride: [...stride] });
}

function isNonNegativeInteger(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
}

function isIntegerList(value: unknown): value is number[] {
  return Array.isArray(value) && value.every(isNonNegativeInteger);
}

function describe(value: unknown): string {
  const text = JSON.stringify(value, (_key, item: unknown) =>
    item instanceof Map ? 'dict' : item instanceof StorageClass ? `${item.dtype} storage class` : item,
  );
  return text === undefined ? String(value) : text.length > 200 ? `${text.slice(0, 200)}...` : text;
}
