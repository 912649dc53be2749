import Foundation
import XAICore

/// Built-in models with seeded random weights (He initialisation, non-trivial batch-norm statistics),
/// in torchvision's architectures: for benchmarks and tests that need no files. Weights mean nothing;
/// speed and shapes match the real networks. Names are accepted wherever a model path is.
public enum Zoo {
    public static let names = ["resnet18", "resnet34", "resnet50", "vgg16", "mobilenet_v2", "squeezenet1_1"]

    /// Builds a zoo model for `size x size` inputs (224 by default), weights from `seed`.
    public static func model(_ name: String, size: Int = 224, seed: UInt64 = 0) throws -> Graph {
        var b = GraphBuilder(name: name, size: size, seed: seed)
        let y: String
        switch name {
        case "resnet18": y = b.resnet(blocks: [2, 2, 2, 2], bottleneck: false)
        case "resnet34": y = b.resnet(blocks: [3, 4, 6, 3], bottleneck: false)
        case "resnet50": y = b.resnet(blocks: [3, 4, 6, 3], bottleneck: true)
        case "vgg16": y = b.vgg16()
        case "mobilenet_v2": y = b.mobilenetV2()
        case "squeezenet1_1": y = b.squeezenet11()
        default:
            throw XAIError.invalidArgument(parameter: "model", value: name, reason: "neither a file nor a zoo model (\(names.joined(separator: ", ")))")
        }
        let output = b.named(y, "logits")
        return b.graph(output: output)
    }
}

/// Appends nodes and seeded weights; every helper returns the name of the value it produces.
struct GraphBuilder {
    let name: String
    let size: Int
    var rng: SeededGenerator
    var nodes: [Node] = []
    var initializers: [String: Tensor] = [:]
    var counter = 0

    init(name: String, size: Int, seed: UInt64) {
        self.name = name
        self.size = size
        rng = SeededGenerator(seed: seed &+ 0x5EED)
    }

    func graph(output: String) -> Graph {
        Graph(name: name, inputs: [ValueInfo(name: "input", shape: [nil, 3, size, size])],
              outputs: [ValueInfo(name: output, shape: [nil, 1000])], initializers: initializers, nodes: nodes)
    }

    mutating func fresh(_ prefix: String) -> String {
        counter += 1
        return "\(prefix)_\(counter)"
    }

    /// Renames the value the last node produced (torchvision-like names for the layers users pick).
    mutating func named(_ value: String, _ newName: String) -> String {
        guard let i = nodes.lastIndex(where: { $0.outputs == [value] }) else { return value }
        nodes[i].outputs = [newName]
        return newName
    }

    mutating func add(_ op: Op, _ inputs: [String], _ prefix: String) -> String {
        let out = fresh(prefix)
        nodes.append(Node(name: out, op: op, inputs: inputs, outputs: [out]))
        return out
    }

    mutating func weight(_ shape: Shape, std: Float) -> String {
        let n = fresh("w")
        initializers[n] = Tensor(unchecked: shape, (0..<shape.count).map { _ in std * rng.nextGaussian() })
        return n
    }

    mutating func uniform(_ count: Int, _ lo: Float, _ hi: Float) -> String {
        let n = fresh("p")
        initializers[n] = Tensor(unchecked: [count], (0..<count).map { _ in lo + (hi - lo) * rng.nextUnitFloat() })
        return n
    }

    mutating func conv(_ x: String, _ cin: Int, _ cout: Int, _ k: Int, stride: Int = 1, pad: Int? = nil, groups: Int = 1, bias: Bool = false) -> String {
        let w = weight([cout, cin / groups, k, k], std: (2 / Float(cin / groups * k * k)).squareRoot())
        let inputs = bias ? [x, w, uniform(cout, -0.1, 0.1)] : [x, w]
        return add(.conv(Conv2DParams(stride: stride, padding: pad ?? k / 2, groups: groups), activation: .identity, autoPad: .explicit), inputs, "conv")
    }

    mutating func bn(_ x: String, _ c: Int) -> String {
        let inputs = [x, uniform(c, 0.5, 1.5), uniform(c, -0.2, 0.2), uniform(c, -0.2, 0.2), uniform(c, 0.5, 1.5)]
        return add(.batchNorm(epsilon: 1e-5), inputs, "bn")
    }

    mutating func act(_ x: String, _ u: UnaryOp = .relu) -> String { add(.unary(u), [x], "act") }

    mutating func convBNAct(_ x: String, _ cin: Int, _ cout: Int, _ k: Int, stride: Int = 1, groups: Int = 1, activation: UnaryOp? = .relu) -> String {
        let y = bn(conv(x, cin, cout, k, stride: stride, groups: groups), cout)
        return activation.map { act(y, $0) } ?? y
    }

    mutating func linear(_ x: String, _ cin: Int, _ cout: Int) -> String {
        let w = weight([cout, cin], std: (1 / Float(cin)).squareRoot())
        return add(.gemm(transA: false, transB: true, alpha: 1, beta: 1, activation: .identity), [x, w, uniform(cout, -0.05, 0.05)], "fc")
    }

    mutating func classifierHead(_ x: String, _ c: Int) -> String {
        let pooled = add(.globalAveragePool, [x], "gap")
        return linear(add(.flatten(axis: 1), [pooled], "flatten"), c, 1000)
    }

    mutating func resnet(blocks: [Int], bottleneck: Bool) -> String {
        var x = convBNAct("input", 3, 64, 7, stride: 2)
        x = add(.pool(Pool2DParams(.max, kernel: (3, 3), stride: (2, 2), padding: (1, 1, 1, 1)), autoPad: .explicit), [x], "maxpool")
        var cin = 64
        for (stage, count) in blocks.enumerated() {
            let planes = 64 << stage
            let cout = bottleneck ? planes * 4 : planes
            for i in 0..<count {
                let stride = i == 0 && stage > 0 ? 2 : 1
                var y: String
                if bottleneck {
                    y = convBNAct(x, cin, planes, 1)
                    y = convBNAct(y, planes, planes, 3, stride: stride)
                    y = convBNAct(y, planes, cout, 1, activation: nil)
                } else {
                    y = convBNAct(x, cin, planes, 3, stride: stride)
                    y = convBNAct(y, planes, planes, 3, activation: nil)
                }
                let shortcut = (stride != 1 || cin != cout) ? convBNAct(x, cin, cout, 1, stride: stride, activation: nil) : x
                x = named(act(add(.binary(.add), [y, shortcut], "add")), "layer\(stage + 1).\(i)")
                cin = cout
            }
        }
        return classifierHead(x, cin)
    }

    mutating func vgg16() -> String {
        var x = "input", cin = 3, index = 0
        for v in [64, 64, 0, 128, 128, 0, 256, 256, 256, 0, 512, 512, 512, 0, 512, 512, 512, 0] {
            if v == 0 {
                x = named(add(.pool(Pool2DParams(.max, kernel: (2, 2)), autoPad: .explicit), [x], "maxpool"), "features.\(index)")
                index += 1
            } else {
                x = named(act(conv(x, cin, v, 3, pad: 1, bias: true)), "features.\(index + 1)")
                index += 2
                cin = v
            }
        }
        let side = size / 32
        x = add(.flatten(axis: 1), [x], "flatten")
        x = act(linear(x, 512 * side * side, 4096))
        x = act(linear(add(.identity, [x], "dropout"), 4096, 4096))
        return linear(add(.identity, [x], "dropout"), 4096, 1000)
    }

    mutating func mobilenetV2() -> String {
        var x = convBNAct("input", 3, 32, 3, stride: 2, activation: .relu6)
        var cin = 32
        for (t, c, n, s) in [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)] {
            for i in 0..<n {
                let stride = i == 0 ? s : 1
                let hidden = cin * t
                var y = x
                if t != 1 { y = convBNAct(y, cin, hidden, 1, activation: .relu6) }
                y = convBNAct(y, hidden, hidden, 3, stride: stride, groups: hidden, activation: .relu6)
                y = convBNAct(y, hidden, c, 1, activation: nil)
                x = (stride == 1 && cin == c) ? add(.binary(.add), [x, y], "add") : y
                cin = c
            }
        }
        x = named(convBNAct(x, cin, 1280, 1, activation: .relu6), "features.18")
        return classifierHead(add(.identity, [x], "dropout"), 1280)
    }

    mutating func fire(_ x: String, _ cin: Int, _ s: Int, _ e: Int) -> String {
        let sq = act(conv(x, cin, s, 1, bias: true))
        let e1 = act(conv(sq, s, e, 1, bias: true))
        let e3 = act(conv(sq, s, e, 3, pad: 1, bias: true))
        return add(.concat(axis: 1), [e1, e3], "concat")
    }

    mutating func squeezenet11() -> String {
        let ceilPool = Pool2DParams(.max, kernel: (3, 3), stride: (2, 2), ceilMode: true)
        var x = act(conv("input", 3, 64, 3, stride: 2, pad: 0, bias: true))
        x = add(.pool(ceilPool, autoPad: .explicit), [x], "maxpool")
        x = fire(fire(x, 64, 16, 64), 128, 16, 64)
        x = add(.pool(ceilPool, autoPad: .explicit), [x], "maxpool")
        x = fire(fire(x, 128, 32, 128), 256, 32, 128)
        x = add(.pool(ceilPool, autoPad: .explicit), [x], "maxpool")
        x = named(fire(fire(fire(fire(x, 256, 48, 192), 384, 48, 192), 384, 64, 256), 512, 64, 256), "features.12")
        x = act(conv(add(.identity, [x], "dropout"), 512, 1000, 1, bias: true))
        return add(.flatten(axis: 1), [add(.globalAveragePool, [x], "gap")], "flatten")
    }
}
