"""The SQL front end: the lark grammar, the parser and its AST."""
