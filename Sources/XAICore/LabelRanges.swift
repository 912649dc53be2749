import Foundation

/// The value ranges of segment label maps already checked, by storage. A label map is uploaded
/// once per image and used for many batches of masks, so it is read back once and remembered for
/// as long as its storage lives (a weak reference guards against a new storage at a reused address).
final class LabelRanges: @unchecked Sendable {
    static let shared = LabelRanges()

    private struct Entry {
        weak var storage: AnyObject?
        let range: LabelRange
    }
    private var entries: [ObjectIdentifier: Entry] = [:]
    private let lock = NSLock()

    /// The range of `labels`, computed by `read` the first time it is asked for.
    func range(of labels: DeviceArray, read: () throws -> LabelRange) throws -> LabelRange {
        let key = ObjectIdentifier(labels.storage)
        lock.lock()
        if let e = entries[key], e.storage === labels.storage {
            lock.unlock()
            return e.range
        }
        lock.unlock()
        let r = try read()
        lock.lock(); defer { lock.unlock() }
        if entries.count >= 256 { entries = entries.filter { $0.value.storage != nil } }
        entries[key] = Entry(storage: labels.storage, range: r)
        return r
    }
}
