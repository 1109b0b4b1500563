import CForkliftSys

/// What `ps` shows for this process, e.g. `forklift: worker pool=www gen=1`.
public enum ProcessTitle {
    public static func set(_ title: String) {
        forklift_set_process_title(title)
        // The 15-byte comm (top, pidof) stays "forklift"; only the role changes.
        _ = forklift_set_name(String(title.prefix(15)))
    }
}
