// Who may use the socket: the same rule as the Linux agent — root, or a member of group "flowtop".
// The socket file is root:flowtop 0660 as a first fence; getpeereid() is checked again on subscribe,
// because file modes are only as good as the directory they sit in. NOT YET BUILT OR RUN ON A MAC.
import Darwin
import FlowtopShared

struct PeerCredentials {
    let uid: uid_t
    let gid: gid_t
}

enum PeerAccess {
    static func credentials(of fd: Int32) -> PeerCredentials? {
        var uid: uid_t = 0
        var gid: gid_t = 0
        guard getpeereid(fd, &uid, &gid) == 0 else { return nil }
        return PeerCredentials(uid: uid, gid: gid)
    }

    static func groupID(named name: String) -> gid_t? {
        guard let entry = getgrnam(name) else { return nil }
        return entry.pointee.gr_gid
    }

    /// nil when allowed, else the reason in words.
    static func refusal(for peer: PeerCredentials?, group: gid_t?) -> String? {
        guard let peer else { return "the peer's credentials could not be read" }
        if peer.uid == 0 { return nil }
        guard let group else { return "only root may connect: group \"\(FlowtopIDs.groupName)\" does not exist on this Mac" }
        if peer.gid == group || member(uid: peer.uid, primaryGroup: peer.gid, of: group) { return nil }
        return "uid \(peer.uid) is neither root nor in group \"\(FlowtopIDs.groupName)\""
    }

    private static func member(uid: uid_t, primaryGroup: gid_t, of group: gid_t) -> Bool {
        guard let pw = getpwuid(uid), let name = pw.pointee.pw_name else { return false }
        var count: Int32 = 64
        var groups = [Int32](repeating: 0, count: Int(count))
        // getgrouplist reports -1 when the buffer was too small; the groups that fit are still filled.
        _ = getgrouplist(name, Int32(bitPattern: primaryGroup), &groups, &count)
        return groups.prefix(Int(max(0, min(count, 64)))).contains(Int32(bitPattern: group))
    }
}
