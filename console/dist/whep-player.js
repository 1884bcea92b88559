import{a,b}from"./chunk-PWIBPKWC.js";export{a as WhepError,b as playWhep};
