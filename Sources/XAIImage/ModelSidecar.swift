import Foundation
import XAICore

/// What sits next to a model: its preprocessing and class names (`model.json` beside `model.onnx`).
public struct ModelSidecar: Codable, Sendable, Equatable {
    public var mean: [Float]?
    public var std: [Float]?
    public var resize: Int?
    public var labels: [String]?

    public init(mean: [Float]? = nil, std: [Float]? = nil, resize: Int? = nil, labels: [String]? = nil) {
        self.mean = mean
        self.std = std
        self.resize = resize
        self.labels = labels
    }

    /// The sidecar of the model at `modelPath` (`x.onnx` -> `x.json`), or `nil` when there is none.
    /// - Throws: ``XAIError/file(path:reason:)`` for a sidecar that is not valid JSON of this shape.
    public static func load(forModel modelPath: String) throws -> ModelSidecar? {
        guard modelPath.hasSuffix(".onnx") else { return nil }
        let path = String(modelPath.dropLast(5)) + ".json"
        guard let data = FileManager.default.contents(atPath: path) else { return nil }
        do { return try JSONDecoder().decode(ModelSidecar.self, from: data) } catch {
            throw XAIError.file(path: path, reason: "not a valid sidecar (\(error))")
        }
    }

    /// The label of class `index`, if the sidecar names it.
    public func label(_ index: Int) -> String? {
        guard let labels, index >= 0, index < labels.count else { return nil }
        return labels[index]
    }
}

extension Preprocessing {
    /// The preprocessing a run uses: a `preset` (`imagenet`, `none`, or `r,g,b/r,g,b` means and
    /// standard deviations) when given, else the sidecar's, else ImageNet's; `resize` overrides the
    /// shorter side.
    /// - Throws: ``XAIError/invalidArgument(parameter:value:reason:)`` (`preset`, `mean`, `std`, `resize`).
    public static func resolve(preset: String?, resize: Int?, sidecar: ModelSidecar?) throws -> Preprocessing {
        var p: Preprocessing
        switch preset {
        case nil:
            p = sidecar.map { Preprocessing(resize: $0.resize, mean: $0.mean ?? [0, 0, 0], std: $0.std ?? [1, 1, 1]) } ?? .imagenet
        case "imagenet": p = .imagenet
        case "none": p = .none
        case let custom?:
            let parts = custom.split(separator: "/").map { $0.split(separator: ",").map { Float($0.trimmingCharacters(in: .whitespaces)) } }
            guard parts.count == 2, parts.allSatisfy({ $0.count == 3 && $0.allSatisfy { $0 != nil } }) else {
                throw XAIError.invalidArgument(parameter: "preset", value: custom, reason: "none of imagenet, none or MEAN/STD as r,g,b/r,g,b")
            }
            p = Preprocessing(mean: parts[0].compactMap { $0 }, std: parts[1].compactMap { $0 })
        }
        if let resize { p.resize = resize }
        try p.validate()
        return p
    }
}
