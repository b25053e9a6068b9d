import onnxProto from 'onnx-proto';

const { onnx } = onnxProto;

export type ElementType = 'float32' | 'float64' | 'float16' | 'int64' | 'int32' | 'uint8' | 'int8';

export const ELEMENT_TYPE_CODES: Record<ElementType, number> = {
  float32: onnx.TensorProto.DataType.FLOAT,
  float64: onnx.TensorProto.DataType.DOUBLE,
  float16: onnx.TensorProto.DataType.FLOAT16,
  int64: onnx.TensorProto.DataType.INT64,
  int32: onnx.TensorProto.DataType.INT32,
  uint8: onnx.TensorProto.DataType.UINT8,
  int8: onnx.TensorProto.DataType.INT8,
};

/** Raw contents of a weight, produced only when the model file is written (so weights stream one at a time). */
export type WeightData = Float32Array | Uint8Array | Int8Array | Uint16Array | BigInt64Array;

export interface Weight {
  name: string;
  type: ElementType;
  dims: number[];
  produce: () => Promise<WeightData>;
}

type AttributeValue = number | string | number[] | { float: number };

interface ValueInfo {
  name: string;
  type: ElementType;
  dims: Array<number | string>;
}

/** Builds an ONNX graph node by node; each value is named by a string, as in ONNX itself. */
export class GraphBuilder {
  readonly inputs: ValueInfo[] = [];
  readonly outputs: ValueInfo[] = [];
  readonly weights: Weight[] = [];
  readonly nodes: InstanceType<typeof onnx.NodeProto>[] = [];
  readonly constants: InstanceType<typeof onnx.TensorProto>[] = [];
  private counter = 0;

  input(name: string, type: ElementType, dims: Array<number | string>): string {
    this.inputs.push({ name, type, dims });
    return name;
  }

  output(value: string, name: string, type: ElementType, dims: Array<number | string>): void {
    this.node('Identity', [value], {}, { outputs: [name] });
    this.outputs.push({ name, type, dims });
  }

  weight(name: string, type: ElementType, dims: number[], produce: () => Promise<WeightData>): string {
    this.weights.push({ name, type, dims, produce });
    return name;
  }

  /** A small constant embedded in the graph (shapes, axes, scalars). */
  constInt64(values: number[], scalar = false): string {
    const name = `const_${this.counter++}`;
    this.constants.push(
      onnx.TensorProto.create({
        name,
        dataType: ELEMENT_TYPE_CODES.int64,
        dims: scalar ? [] : [values.length],
        int64Data: values,
      }),
    );
    return name;
  }

  constFloat(value: number): string {
    const name = `const_${this.counter++}`;
    this.constants.push(
      onnx.TensorProto.create({ name, dataType: ELEMENT_TYPE_CODES.float32, dims: [], floatData: [value] }),
    );
    return name;
  }

  /** Adds a node with several outputs and returns their names. */
  nodeOutputs(opType: string, inputs: string[], count: number, attributes: Record<string, AttributeValue> = {}): string[] {
    const outputs = Array.from({ length: count }, (_, i) => `${opType.toLowerCase()}_${this.counter++}_${i}`);
    this.node(opType, inputs, attributes, { outputs });
    return outputs;
  }

  /** Adds a node and returns its (first) output name. */
  node(
    opType: string,
    inputs: string[],
    attributes: Record<string, AttributeValue> = {},
    options: { outputs?: string[]; domain?: string } = {},
  ): string {
    const outputs = options.outputs ?? [`${opType.toLowerCase()}_${this.counter++}`];
    this.nodes.push(
      onnx.NodeProto.create({
        opType,
        domain: options.domain ?? '',
        input: inputs,
        output: outputs,
        name: `${opType}_${this.nodes.length}`,
        attribute: Object.entries(attributes).map(([name, value]) => attributeProto(name, value)),
      }),
    );
    return outputs[0]!;
  }
}

function attributeProto(name: string, value: AttributeValue) {
  const { AttributeType } = onnx.AttributeProto;
  if (typeof value === 'string') {
    return onnx.AttributeProto.create({ name, type: AttributeType.STRING, s: new TextEncoder().encode(value) });
  }
  if (Array.isArray(value)) return onnx.AttributeProto.create({ name, type: AttributeType.INTS, ints: value });
  if (typeof value === 'object') return onnx.AttributeProto.create({ name, type: AttributeType.FLOAT, f: value.float });
  return onnx.AttributeProto.create({ name, type: AttributeType.INT, i: value });
}

export function valueInfoProto(info: ValueInfo) {
  return onnx.ValueInfoProto.create({
    name: info.name,
    type: {
      tensorType: {
        elemType: ELEMENT_TYPE_CODES[info.type],
        shape: {
          dim: info.dims.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })),
        },
      },
    },
  });
}
