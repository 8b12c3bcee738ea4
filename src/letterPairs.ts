// Written by scripts/letter-pairs.ts from the English common words of @zxcvbn-ts/language-en; do not edit.

/** The characters a cell is written with: a cell is -log2 of its share of its row, in half bits. */
export const CELL_DIGITS = '0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-_';

/** Row 0: the letter a word begins with; row 1 + (letter - a): the letter that follows it in a word. */
export const LETTER_PAIRS: readonly string[] = [
  '8999baa99dca9b9aga76dd9i7h', // start
  'ha99gdbc9hb795gbi686badg9f', // a
  '6bhg4iig8fi6hh6hi7be7giiai', // b
  '6ich6ih69i79ih5hh9f8aiiidi', // c
  '7gga4gdf5hhbea5hi88haefi9i', // d
  '7fa69cdfchf8a6dcg568fbdcbg', // e
  '7hhi67hi5ii9hi4ii7f97ihiei', // f
  '7hih5ha57iiagb5hi7ae8igidi', // g
  '5hih3hig6iigef7iicf9bihici', // h
  'bd899b9ihhc9a49dha66gbighe', // i
  '5hih5hih8giiii5highh3iiihi', // j
  '8gih3fge4hgbf6bgid7gcifiai', // k
  '6gf85cgh6ic5eh7difabbefi7i', // l
  '5afi4gih6iih9f68idbh9iii8i', // m
  '8g966d4g8gaega7hhg86dehibh', // n
  'ddcbe9ddchca969bi7b93c9geh', // o
  '6ghg5hh97ih7gh68i6aa9ihidi', // p
  'ehhiiiiiaiiiiihihhih0iiiii', // q
  '7eca4ecg6iccbb7eia89adgi9i', // r
  '8gah5gh77icccc79fh759ididi', // s
  '8hdi6hi37iicfg5ii9aabheibh', // t
  'bb9bad9dahf796g9i566ihihdg', // u
  '8iih1iii5iihii9iihhighiiei', // v
  '4gif5gh56igdh96iibbhhihifi', // w
  '7h6i7gia5iiegib4gih5ahggbi', // x
  'cefg8ghhbiieee1fifadeifiih', // y
  '6ghi3iga5ihbfh7gifggafhh87', // z
];
