import{a,b}from"./chunk-FD97FCE0.js";export{a as WhepError,b as playWhep};
