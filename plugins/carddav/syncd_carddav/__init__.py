"""syncd-carddav: a CardDAV address book as a syncd connector."""
