// The checked entry points: the one place where operands are validated (by building the plan a
// primitive receives) and where a primitive a backend does not support is sent to the float64 host
// implementation. Every caller (executor, methods, tests) goes through these.

extension Backend {
    /// `activation(alpha * op(a) * op(b) + bias)` where op transposes when asked.
    /// - Parameters:
    ///   - a: `[M, K]`, or `[K, M]` with `transposeA`.
    ///   - b: `[K, N]`, or `[N, K]` with `transposeB`.
    ///   - bias: `[N]`, added to every row, or `nil`.
    /// - Returns: `[M, N]`.
    /// - Throws: ``XAIError/shapeMismatch(op:expected:got:)`` when the operands do not fit.
    public func gemm(_ a: DeviceArray, _ b: DeviceArray, transposeA: Bool, transposeB: Bool, alpha: Float,
                     bias: DeviceArray?, activation: UnaryOp) throws -> DeviceArray {
        let plan = try GemmPlan(a: a.shape, b: b.shape, transposeA: transposeA, transposeB: transposeB, bias: bias?.shape)
        guard supports(.gemm) else {
            return try onHost([a, b] + (bias.map { [$0] } ?? [])) { r, x in
                try r.gemm(x[0], x[1], plan: plan, alpha: alpha, bias: x.count > 2 ? x[2] : nil, activation: activation)
            }
        }
        return try gemm(a, b, plan: plan, alpha: alpha, bias: bias, activation: activation)
    }

    /// `activation(conv(x, weight) + bias + residual)`.
    /// - Parameters:
    ///   - x: `[N, Cin, H, W]`.
    ///   - weight: `[Cout, Cin / groups, kH, kW]`.
    ///   - bias: `[Cout]` or `nil`.
    ///   - residual: an array shaped like the output, added before the activation, or `nil`.
    ///   - exact: `false` lets a backend use a faster, less exact algorithm (Winograd) where its
    ///     policy allows: forward-only passes, whose activations no gradient goes through.
    /// - Throws: ``XAIError/shapeMismatch(op:expected:got:)`` naming both shapes when they do not fit.
    public func conv2d(_ x: DeviceArray, weight: DeviceArray, bias: DeviceArray?, residual: DeviceArray? = nil, params: Conv2DParams,
                       activation: UnaryOp, exact: Bool = true) throws -> DeviceArray {
        var plan = try ConvPlan(input: x.shape, weight: weight.shape, bias: bias?.shape, residual: residual?.shape, params: params)
        plan.exact = exact
        guard supports(.conv2d) else {
            return try onHost([x, weight, bias, residual].compactMap { $0 }) { r, a in
                var rest = a.dropFirst(2).makeIterator()
                let b = bias == nil ? nil : rest.next(), res = residual == nil ? nil : rest.next()
                return try r.conv2d(a[0], weight: a[1], bias: b, residual: res, plan: plan, activation: activation)
            }
        }
        return try conv2d(x, weight: weight, bias: bias, residual: residual, plan: plan, activation: activation)
    }

    /// The gradient of a (bias-free, activation-free) convolution with respect to its input of shape `inputShape`.
    public func conv2dBackwardInput(_ gradOutput: DeviceArray, weight: DeviceArray, params: Conv2DParams,
                                    inputShape: Shape) throws -> DeviceArray {
        let plan = try ConvPlan(gradient: gradOutput.shape, weight: weight.shape, inputShape: inputShape, params: params)
        guard supports(.conv2dBackwardInput) else {
            return try onHost([gradOutput, weight]) { r, a in try r.conv2dBackwardInput(a[0], weight: a[1], plan: plan) }
        }
        return try conv2dBackwardInput(gradOutput, weight: weight, plan: plan)
    }

    /// ``conv2dBackwardInput(_:weight:params:inputShape:)`` stored through `store`: plus the
    /// gradient already accumulated, times the derivative of the activation whose output the input
    /// is. In the convolution's own stores where the backend has them, else composed (the same bits).
    /// - Throws: ``XAIError/shapeMismatch(op:expected:got:)`` when `store`'s arrays are not shaped as the input.
    public func conv2dBackwardInput(_ gradOutput: DeviceArray, weight: DeviceArray, params: Conv2DParams,
                                    inputShape: Shape, store: GradientStore) throws -> DeviceArray {
        for (what, array) in [("accumulated gradient", store.accumulated), ("activation output", store.activation?.output)] {
            if let array, array.shape != inputShape {
                throw XAIError.shapeMismatch(op: "conv2dBackwardInput (\(what))", expected: "the input's shape \(inputShape)", got: [array.shape])
            }
        }
        if !store.isEmpty && supports(.conv2dBackwardInput) {
            let plan = try ConvPlan(gradient: gradOutput.shape, weight: weight.shape, inputShape: inputShape, params: params)
            if let fused = try conv2dBackwardInput(gradOutput, weight: weight, plan: plan, store: store) { return fused }
        }
        return try store.composed(try conv2dBackwardInput(gradOutput, weight: weight, params: params, inputShape: inputShape), on: self)
    }

    /// Max or average pooling of `[N, C, H, W]`.
    public func pool2d(_ x: DeviceArray, params: Pool2DParams) throws -> DeviceArray {
        let plan = try PoolPlan(input: x.shape, params: params)
        guard supports(.pool2d) else { return try onHost([x]) { r, a in try r.pool2d(a[0], plan: plan) } }
        return try pool2d(x, plan: plan)
    }

    /// The gradient of ``pool2d(_:params:)``; max pooling credits the first maximum of each window.
    public func pool2dBackward(_ gradOutput: DeviceArray, input: DeviceArray, params: Pool2DParams) throws -> DeviceArray {
        let plan = try PoolPlan(gradient: gradOutput.shape, input: input.shape, params: params)
        guard supports(.pool2dBackward) else {
            return try onHost([gradOutput, input]) { r, a in try r.pool2dBackward(a[0], input: a[1], plan: plan) }
        }
        return try pool2dBackward(gradOutput, input: input, plan: plan)
    }

    /// A pointwise function.
    public func unary(_ op: UnaryOp, _ x: DeviceArray) throws -> DeviceArray {
        let plan = UnaryPlan(op, shape: x.shape)
        guard supports(.unary) else { return try onHost([x]) { r, a in try r.unary(a[0], plan: plan) } }
        return try unary(x, plan: plan)
    }

    /// `gradOutput * op'(.)`, evaluated from the op's input, or from its output when
    /// `valueIsOutput` (allowed only where ``UnaryOp/derivativeFromOutput``).
    public func unaryBackward(_ op: UnaryOp, gradOutput: DeviceArray, value: DeviceArray, valueIsOutput: Bool) throws -> DeviceArray {
        let plan = try UnaryBackwardPlan(op, gradient: gradOutput.shape, value: value.shape, valueIsOutput: valueIsOutput)
        guard supports(.unaryBackward) else {
            return try onHost([gradOutput, value]) { r, a in try r.unaryBackward(a[0], value: a[1], plan: plan) }
        }
        return try unaryBackward(gradOutput, value: value, plan: plan)
    }

    /// Elementwise `a op b` with numpy broadcasting.
    public func binary(_ op: BinaryOp, _ a: DeviceArray, _ b: DeviceArray) throws -> DeviceArray {
        let plan = try BroadcastPlan(a.shape, b.shape, op: "binary(\(op))")
        guard supports(.binary) else { return try onHost([a, b]) { r, x in try r.binary(op, x[0], x[1], plan: plan) } }
        return try binary(op, a, b, plan: plan)
    }

    /// Reduces over `axes` (negative axes count from the end), keeping them as extent-1 axes.
    public func reduce(_ op: ReduceOp, _ x: DeviceArray, axes: [Int]) throws -> DeviceArray {
        let plan = try ReducePlan(input: x.shape, axes: axes, op: "reduce(\(op))")
        guard supports(.reduce) else { return try onHost([x]) { r, a in try r.reduce(op, a[0], plan: plan) } }
        return try reduce(op, x, plan: plan)
    }

    /// The gradient of ``reduce(_:_:axes:)``: broadcast for sum and mean; for max and min, shared
    /// equally among the tied extrema of `input`.
    public func reduceBackward(_ op: ReduceOp, gradOutput: DeviceArray, input: DeviceArray, axes: [Int]) throws -> DeviceArray {
        let plan = try ReducePlan(gradient: gradOutput.shape, input: input.shape, axes: axes, op: "reduceBackward(\(op))")
        guard supports(.reduceBackward) else {
            return try onHost([gradOutput, input]) { r, a in try r.reduceBackward(op, gradOutput: a[0], input: a[1], plan: plan) }
        }
        return try reduceBackward(op, gradOutput: gradOutput, input: input, plan: plan)
    }

    /// Softmax (or log-softmax) along `axis`.
    public func softmax(_ x: DeviceArray, axis: Int, log: Bool) throws -> DeviceArray {
        let plan = try SoftmaxPlan(x.shape, axis: axis, log: log)
        guard supports(.softmax) else { return try onHost([x]) { r, a in try r.softmax(a[0], plan: plan) } }
        return try softmax(x, plan: plan)
    }

    /// The gradient of ``softmax(_:axis:log:)`` given its output.
    public func softmaxBackward(_ gradOutput: DeviceArray, output: DeviceArray, axis: Int, log: Bool) throws -> DeviceArray {
        let plan = try SoftmaxPlan(gradient: gradOutput.shape, output: output.shape, axis: axis, log: log)
        guard supports(.softmaxBackward) else {
            return try onHost([gradOutput, output]) { r, a in try r.softmaxBackward(a[0], output: a[1], plan: plan) }
        }
        return try softmaxBackward(gradOutput, output: output, plan: plan)
    }

    /// Bilinear resize of the two spatial axes of `[N, C, H, W]` (PyTorch `interpolate` semantics).
    public func resizeBilinear(_ x: DeviceArray, height: Int, width: Int, alignCorners: Bool) throws -> DeviceArray {
        let plan = try ResizePlan(input: x.shape, height: height, width: width, alignCorners: alignCorners)
        guard supports(.resizeBilinear) else { return try onHost([x]) { r, a in try r.resizeBilinear(a[0], plan: plan) } }
        return try resizeBilinear(x, plan: plan)
    }

    /// The gradient of ``resizeBilinear(_:height:width:alignCorners:)`` for an input of `inputShape`.
    public func resizeBilinearBackward(_ gradOutput: DeviceArray, inputShape: Shape, alignCorners: Bool) throws -> DeviceArray {
        let plan = try ResizePlan(gradient: gradOutput.shape, inputShape: inputShape, alignCorners: alignCorners)
        guard supports(.resizeBilinearBackward) else {
            return try onHost([gradOutput]) { r, a in try r.resizeBilinearBackward(a[0], plan: plan) }
        }
        return try resizeBilinearBackward(gradOutput, plan: plan)
    }

    /// Expands compact mask descriptions to `[N, 1, height, width]` on the device.
    /// - Throws: ``XAIError/invalidArgument(parameter:value:reason:)`` for a description that does not
    ///   fit the image (labels outside the keep bits, grids cropped outside their upsampling).
    public func masks(_ spec: MaskSpec, height: Int, width: Int) throws -> DeviceArray {
        let plan = try maskPlan(spec, height: height, width: width)
        guard supports(.masks) else {
            return try onHost([]) { r, _ in
                try r.masks(plan: try MaskPlan(try spec.moved(to: r, from: self), height: height, width: width, labelRange: plan.labelRange))
            }
        }
        return try masks(plan: plan)
    }

    /// `out[n] = image * m[n] + baseline * (1 - m[n])` for `image` and `baseline` `[1, C, H, W]`,
    /// the masks built on the device from `spec`. Result `[N, C, H, W]`.
    public func composite(image: DeviceArray, baseline: DeviceArray, masks spec: MaskSpec) throws -> DeviceArray {
        guard image.shape.rank == 4 else {
            throw XAIError.shapeMismatch(op: "composite", expected: "image and baseline both [1, C, H, W]", got: [image.shape, baseline.shape])
        }
        let plan = try CompositePlan(image: image.shape, baseline: baseline.shape,
                                     masks: try maskPlan(spec, height: image.shape[2], width: image.shape[3]))
        guard supports(.composite) else {
            return try onHost([image, baseline]) { r, a in
                let moved = try MaskPlan(try spec.moved(to: r, from: self), height: plan.masks.height, width: plan.masks.width,
                                         labelRange: plan.masks.labelRange)
                return try r.composite(image: a[0], baseline: a[1], plan: try CompositePlan(image: a[0].shape, baseline: a[1].shape, masks: moved))
            }
        }
        return try composite(image: image, baseline: baseline, plan: plan)
    }

    /// `copies` noisy copies of `item` (`[1, ...]`), built on the device: copy `k` is
    /// `item + sigma * z`, `z` stream `firstStream + k` of ``CounterRandom`` under `seed`.
    /// - Throws: ``XAIError/invalidArgument(parameter:value:reason:)`` naming `copies` or `sigma`.
    public func noisyCopies(of item: DeviceArray, copies: Int, sigma: Float, seed: UInt64, firstStream: UInt64) throws -> DeviceArray {
        let plan = try NoisePlan(item: item.shape, copies: copies, sigma: sigma, seed: seed, firstStream: firstStream)
        guard supports(.noise) else {
            return try onHost([item]) { r, a in try r.noise(a[0], plan: plan) }
        }
        return try noise(item, plan: plan)
    }

    /// Adds the rows of `rows` (`[count, ...]`), in order, to a running state `[4, item]` (`nil`
    /// to start): ``RunningSum``. Read the statistics with ``runningMean(_:count:squares:)``.
    public func runningSum(_ rows: DeviceArray, state: DeviceArray?, absolute: Bool) throws -> DeviceArray {
        let plan = try RunningSumPlan(rows: rows.shape, state: state?.shape, absolute: absolute)
        guard supports(.runningSum) else {
            return try onHost([rows] + (state.map { [$0] } ?? [])) { r, a in
                try r.runningSum(a[0], state: a.count > 1 ? a[1] : nil, plan: plan)
            }
        }
        return try runningSum(rows, state: state, plan: plan)
    }

    /// Reorders axes: output axis `i` is input axis `perm[i]`.
    public func permute(_ x: DeviceArray, _ perm: [Int]) throws -> DeviceArray {
        // Moving only axes of extent 1 is an identity plan, a view (a sequence-first transformer's
        // `[1, T, C] -> [T, 1, C]` at batch 1).
        try checkedMove([x], try .permute(x.shape, perm))
    }

    /// The box `starts[i] ..< starts[i] + sizes[i]` on every axis.
    public func slice(_ x: DeviceArray, starts: [Int], sizes: [Int]) throws -> DeviceArray {
        try checkedMove([x], try .slice(x.shape, starts: starts, sizes: sizes))
    }

    /// `counts[i]` elements every `steps[i]` from `starts[i]` on every axis: one strided copy.
    public func slice(_ x: DeviceArray, starts: [Int], counts: [Int], steps: [Int]) throws -> DeviceArray {
        try checkedMove([x], try .steppedSlice(x.shape, starts: starts, counts: counts, steps: steps))
    }

    /// The gradient of ``slice(_:starts:counts:steps:)``: `picked` placed back at the sliced
    /// positions of zeros shaped `shape`.
    public func unslice(_ picked: DeviceArray, into shape: Shape, starts: [Int], steps: [Int]) throws -> DeviceArray {
        let plan = try MovementPlan.steppedSlice(shape, starts: starts, counts: picked.shape.dims, steps: steps, scatter: true)
        return try checkedMove([picked], plan)
    }

    /// `out[i] = x[(i - shift) mod n]` along `axis` (`torch.roll`).
    public func roll(_ x: DeviceArray, axis: Int, shift: Int) throws -> DeviceArray {
        try checkedMove([x], try .roll(x.shape, axis: axis, shift: shift))
    }

    /// Constant padding: `before[i]` and `after[i]` elements of `value` around axis `i`.
    public func pad(_ x: DeviceArray, before: [Int], after: [Int], value: Float) throws -> DeviceArray {
        try checkedMove([x], try .pad(x.shape, before: before, after: after, value: value))
    }

    /// Joins arrays along `axis`; all other extents must match.
    public func concat(_ xs: [DeviceArray], axis: Int) throws -> DeviceArray {
        try checkedMove(xs, try .concat(xs.map(\.shape), axis: axis))
    }

    /// Tiles of a clean map `[1, C, H, W]` with each copy's patch laid over it (incremental inference;
    /// see ``MovementPlan/splice(clean:patches:windows:tiles:fill:)``).
    public func splice(clean: DeviceArray, patches: DeviceArray, windows: WindowSet, tiles: WindowSet, fill: Float?) throws -> DeviceArray {
        try checkedMove([clean, patches], try .splice(clean: clean.shape, patches: patches.shape, windows: windows, tiles: tiles, fill: fill))
    }

    /// Copy `n`'s window of image `n` of `batch`.
    public func cut(_ batch: DeviceArray, windows: WindowSet) throws -> DeviceArray {
        try checkedMove([batch], try .cut(batch.shape, windows: windows))
    }

    private func checkedMove(_ inputs: [DeviceArray], _ plan: MovementPlan) throws -> DeviceArray {
        // Swin pads its maps to whole windows and slices them back: at 224 pixels both move nothing.
        if plan.isIdentity { return try inputs[0].reshaped(plan.outputShape) }
        guard supports(.move) else { return try onHost(inputs) { r, a in try r.move(a, plan: plan) } }
        return try move(inputs, plan: plan)
    }

    /// The mask plan, with segment labels checked against the keep bits once per label array.
    private func maskPlan(_ spec: MaskSpec, height: Int, width: Int) throws -> MaskPlan {
        var range: LabelRange?
        switch spec {
        case .segments(let labels, _, _), .ranks(let labels, _, _):
            range = try LabelRanges.shared.range(of: labels) { LabelRange(of: try download(labels).scalars) }
        default: break
        }
        return try MaskPlan(spec, height: height, width: width, labelRange: range)
    }

    /// Runs a primitive this backend does not support on the float64 host backend.
    func onHost(_ inputs: [DeviceArray], _ body: (ReferenceBackend, [DeviceArray]) throws -> DeviceArray) throws -> DeviceArray {
        let reference = ReferenceBackend()
        let hosted = try inputs.map { try reference.upload(try download($0)) }
        return try upload(try reference.download(try body(reference, hosted)))
    }
}

extension MaskSpec {
    /// The same description with its label map (if any) copied from `source` to `target`.
    func moved(to target: any Backend, from source: any Backend) throws -> MaskSpec {
        switch self {
        case .segments(let labels, let keep, let words):
            return .segments(labels: try target.upload(try source.download(labels)), keep: keep, wordsPerSample: words)
        case .ranks(let ranks, let counts, let firstKept):
            return .ranks(ranks: try target.upload(try source.download(ranks)), counts: counts, firstKept: firstKept)
        default:
            return self
        }
    }
}

/// The requirements a backend leaves out (returning `false` from ``Backend/supports(_:)`` for them)
/// need no implementation; these are never reached through the checked entry points.
extension Backend {
    private func missing(_ p: Primitive) -> XAIError {
        .unsupported(op: p.rawValue, reason: "\(name) does not implement it; its supports(_:) must return false for it")
    }
    public func gemm(_ a: DeviceArray, _ b: DeviceArray, plan: GemmPlan, alpha: Float, bias: DeviceArray?, activation: UnaryOp) throws -> DeviceArray { throw missing(.gemm) }
    public func conv2d(_ x: DeviceArray, weight: DeviceArray, bias: DeviceArray?, residual: DeviceArray?, plan: ConvPlan,
                       activation: UnaryOp) throws -> DeviceArray { throw missing(.conv2d) }
    public func conv2dBackwardInput(_ gradOutput: DeviceArray, weight: DeviceArray, plan: ConvPlan) throws -> DeviceArray { throw missing(.conv2dBackwardInput) }
    public func pool2d(_ x: DeviceArray, plan: PoolPlan) throws -> DeviceArray { throw missing(.pool2d) }
    public func pool2dBackward(_ gradOutput: DeviceArray, input: DeviceArray, plan: PoolPlan) throws -> DeviceArray { throw missing(.pool2dBackward) }
    public func unary(_ x: DeviceArray, plan: UnaryPlan) throws -> DeviceArray { throw missing(.unary) }
    public func unaryBackward(_ gradOutput: DeviceArray, value: DeviceArray, plan: UnaryBackwardPlan) throws -> DeviceArray { throw missing(.unaryBackward) }
    public func binary(_ op: BinaryOp, _ a: DeviceArray, _ b: DeviceArray, plan: BroadcastPlan) throws -> DeviceArray { throw missing(.binary) }
    public func reduce(_ op: ReduceOp, _ x: DeviceArray, plan: ReducePlan) throws -> DeviceArray { throw missing(.reduce) }
    public func reduceBackward(_ op: ReduceOp, gradOutput: DeviceArray, input: DeviceArray, plan: ReducePlan) throws -> DeviceArray { throw missing(.reduceBackward) }
    public func softmax(_ x: DeviceArray, plan: SoftmaxPlan) throws -> DeviceArray { throw missing(.softmax) }
    public func softmaxBackward(_ gradOutput: DeviceArray, output: DeviceArray, plan: SoftmaxPlan) throws -> DeviceArray { throw missing(.softmaxBackward) }
    public func layerNorm(_ x: DeviceArray, scale: DeviceArray, bias: DeviceArray?, plan: LayerNormPlan) throws -> DeviceArray { throw missing(.layerNorm) }
    public func layerNormBackward(_ gradOutput: DeviceArray, input: DeviceArray, scale: DeviceArray, plan: LayerNormPlan) throws -> DeviceArray { throw missing(.layerNormBackward) }
    public func resizeBilinear(_ x: DeviceArray, plan: ResizePlan) throws -> DeviceArray { throw missing(.resizeBilinear) }
    public func resizeBilinearBackward(_ gradOutput: DeviceArray, plan: ResizePlan) throws -> DeviceArray { throw missing(.resizeBilinearBackward) }
    public func masks(plan: MaskPlan) throws -> DeviceArray { throw missing(.masks) }
    public func composite(image: DeviceArray, baseline: DeviceArray, plan: CompositePlan) throws -> DeviceArray { throw missing(.composite) }
    public func move(_ inputs: [DeviceArray], plan: MovementPlan) throws -> DeviceArray { throw missing(.move) }
    public func noise(_ item: DeviceArray, plan: NoisePlan) throws -> DeviceArray { throw missing(.noise) }
    public func runningSum(_ rows: DeviceArray, state: DeviceArray?, plan: RunningSumPlan) throws -> DeviceArray { throw missing(.runningSum) }
}
