import XAICore

/// An ONNX Einsum equation with one or two operands, each axis named by a letter (no ellipsis, no
/// letter twice in one operand): transposes, sums and batched matrix products, as attention
/// written with `torch.einsum` exports (MaxViT's `bhid,bhjd->bhij`).
public struct EinsumEquation: Sendable, Hashable, CustomStringConvertible {
    public let inputs: [[Character]]
    public let output: [Character]

    /// Parses `equation` (spaces ignored; without `->` the output is the letters that appear once,
    /// in alphabetical order, as ONNX says).
    /// - Throws: ``XAIError/unsupported(op:reason:)`` for an ellipsis, a repeated letter in one
    ///   operand, more than two operands, or output letters no input has.
    public init(_ equation: String, operands: Int) throws {
        let text = equation.filter { !$0.isWhitespace }
        func fail(_ why: String) -> XAIError { .unsupported(op: "Einsum", reason: "equation '\(equation)': \(why)") }
        guard !text.contains(".") else { throw fail("an ellipsis (...) is not supported") }
        let sides = text.components(separatedBy: "->")
        guard sides.count <= 2 else { throw fail("more than one ->") }
        let inputs = sides[0].split(separator: ",", omittingEmptySubsequences: false).map { Array($0) }
        guard (1...2).contains(inputs.count), inputs.count == operands else {
            throw fail("\(inputs.count) operand terms for \(operands) inputs (one or two are supported)")
        }
        for term in inputs {
            guard term.allSatisfy({ $0.isLetter && $0.isASCII }) else { throw fail("terms must be letters") }
            guard Set(term).count == term.count else { throw fail("a letter repeated in one operand (a diagonal) is not supported") }
        }
        let output: [Character]
        if sides.count == 2 {
            output = Array(sides[1])
            guard output.allSatisfy({ $0.isLetter && $0.isASCII }), Set(output).count == output.count else { throw fail("a bad output term") }
            let known = Set(inputs.joined())
            guard output.allSatisfy(known.contains) else { throw fail("an output letter no operand has") }
        } else {
            var counts: [Character: Int] = [:]
            for c in inputs.joined() { counts[c, default: 0] += 1 }
            output = counts.filter { $0.value == 1 }.keys.sorted()
        }
        self.inputs = inputs
        self.output = output
    }

    init(inputs: [[Character]], output: [Character]) {
        self.inputs = inputs
        self.output = output
    }

    public var description: String { inputs.map { String($0) }.joined(separator: ",") + "->" + String(output) }

    /// Evaluates the equation with backend primitives.
    /// - Throws: ``XAIError/shapeMismatch(op:expected:got:)`` when an operand's rank differs from its
    ///   term or one letter has two extents.
    public func evaluate(_ operands: [DeviceArray], on be: any Backend) throws -> DeviceArray {
        guard operands.count == inputs.count else {
            throw XAIError.invalidArgument(parameter: "inputs", value: "\(operands.count)", reason: "Einsum \(self): \(inputs.count) operands")
        }
        var extent: [Character: Int] = [:]
        for (term, x) in zip(inputs, operands) {
            guard term.count == x.shape.rank else {
                throw XAIError.shapeMismatch(op: "Einsum \(self)", expected: "operand '\(String(term))' of rank \(term.count)", got: operands.map(\.shape))
            }
            for (c, d) in zip(term, x.shape.dims) {
                if let e = extent[c], e != d {
                    throw XAIError.shapeMismatch(op: "Einsum \(self)", expected: "one extent for '\(c)'", got: operands.map(\.shape))
                }
                extent[c] = d
            }
        }
        // Letters only one operand has and the output lacks are summed out first.
        var terms = inputs, xs = operands
        for k in terms.indices {
            let others = Set(terms.indices.filter { $0 != k }.flatMap { terms[$0] }).union(output)
            let lonely = terms[k].indices.filter { !others.contains(terms[k][$0]) }
            guard !lonely.isEmpty else { continue }
            let kept = terms[k].indices.filter { !lonely.contains($0) }
            xs[k] = try be.reduce(.sum, xs[k], axes: lonely).reshaped(Shape(kept.map { xs[k].shape[$0] }))
            terms[k] = kept.map { terms[k][$0] }
        }
        func permuted(_ x: DeviceArray, _ term: [Character], to order: [Character]) throws -> DeviceArray {
            let perm = order.compactMap { term.firstIndex(of: $0) }
            return perm == Array(0..<perm.count) ? x : try be.permute(x, perm)
        }
        func dims(_ letters: [Character]) -> [Int] { letters.map { extent[$0] ?? 1 } }
        if terms.count == 1 {
            return try permuted(xs[0], terms[0], to: output)
        }
        let (a, b) = (terms[0], terms[1])
        let batch = output.filter { a.contains($0) && b.contains($0) }
        let contracted = a.filter { b.contains($0) && !output.contains($0) }
        let freeA = a.filter { !b.contains($0) }, freeB = b.filter { !a.contains($0) }
        let count = dims(batch).reduce(1, *), m = dims(freeA).reduce(1, *), n = dims(freeB).reduce(1, *), k = dims(contracted).reduce(1, *)
        let a3 = try permuted(xs[0], a, to: batch + freeA + contracted).reshaped([count, m, k])
        let b3 = try permuted(xs[1], b, to: batch + contracted + freeB).reshaped([count, k, n])
        let product = try be.batchedMatMul(a3, b3).reshaped(Shape(dims(batch + freeA + freeB)))
        return try permuted(product, batch + freeA + freeB, to: output)
    }

    /// The equation giving the gradient of operand `i` from the output's gradient and the other
    /// operand (`out,other->term`), where every letter of that operand is in one of them; `nil` otherwise.
    public func gradientEquation(_ i: Int) -> EinsumEquation? {
        let term = inputs[i]
        let others = inputs.indices.filter { $0 != i }.map { inputs[$0] }
        let available = Set(output).union(others.joined())
        guard term.allSatisfy(available.contains) else { return nil }
        return EinsumEquation(inputs: [output] + others, output: term)
    }
}
