import ForkliftSystem

/// Who may connect to a pool's unix sockets: PHP-FPM's `listen.owner`, `listen.group` and
/// `listen.mode`, with its defaults. A client needs write permission on the socket file to
/// connect, so the default 0660 lets in the owner and the group only (0666 let in everyone).
public struct SocketPermissions: Equatable, Hashable, Sendable, CustomStringConvertible {
    /// A user or group as configured (a name, or a number) and the number it stands for.
    public struct Account: Equatable, Hashable, Sendable {
        public var name: String
        public var id: UInt32

        public init(name: String, id: UInt32) {
            self.name = name
            self.id = id
        }
    }

    /// nil: the user the master runs as.
    public var owner: Account?
    /// nil: the master's group (or the owner's primary group when the owner is a user name).
    public var group: Account?
    public var mode: UInt32

    public static let defaultMode: UInt32 = 0o660

    public init(owner: Account? = nil, group: Account? = nil, mode: UInt32 = SocketPermissions.defaultMode) {
        self.owner = owner
        self.group = group
        self.mode = mode
    }

    /// "0660", as `listen_mode` is written.
    public static func octal(_ mode: UInt32) -> String {
        let digits = String(mode, radix: 8)
        return String(repeating: "0", count: max(0, 4 - digits.count)) + digits
    }

    public var description: String {
        "mode \(Self.octal(mode)), owner \(owner?.name ?? "(the master's user)"), group \(group?.name ?? "(the master's group)")"
    }
}

extension SocketPermissions {
    /// The numbers chown and chmod take.
    public var file: SocketFilePermissions {
        SocketFilePermissions(owner: owner?.id, group: group?.id, mode: mode)
    }
}
