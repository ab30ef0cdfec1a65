-- Address lists Identity Protection checks every sign-in against, kept by the admins: Tor exit
-- addresses, anonymizing VPN and hosting ranges, known-bad addresses. In the database, so
-- every instance uses the same; an import replaces a whole list.
CREATE TABLE risk_lists (
    kind TEXT NOT NULL,
    entry TEXT NOT NULL,
    imported_at INTEGER NOT NULL,
    PRIMARY KEY (kind, entry)
);
