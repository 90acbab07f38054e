// User names for the table: the uid a flow or an attribution carries, named the way the system names
// it. Attributions from the Linux native layer already carry a name; flows without a token, other
// backends and other platforms' records may carry only the uid, and `0` or `user ? (uid 0)` on screen
// says less than `root`.
import type { Attribution } from '../attribution/types.js';
import { UserNames } from '../native/linux/users.js';

export type UserNameLookup = (uid: number) => string | undefined;

/** Names from /etc/passwd (validated, re-read when it changes; see native/linux/users.ts). */
export function passwdUserNames(path = '/etc/passwd'): UserNameLookup {
  const names = new UserNames(path);
  return (uid) => names.name(uid);
}

/** `a` with its user name filled in when it has a uid and no name; the same object otherwise, and the
 *  same named copy each time for the same object (the table skips updates it has already applied). */
export function namingUsers(lookup: UserNameLookup): (a: Attribution) => Attribution {
  const named = new WeakMap<Attribution, Attribution>();
  return (a) => {
    if (a.user !== undefined || a.uid === undefined) return a;
    const done = named.get(a);
    if (done) return done;
    const user = lookup(a.uid);
    const out = user !== undefined ? { ...a, user } : a;
    named.set(a, out);
    return out;
  };
}
